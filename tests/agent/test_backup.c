/* test_backup.c - backups in reeve-agent against a real PostgreSQL server:
 * the local backup database (secrets sealed at rest), a full backup into a
 * local store with its record and manifest, retention, WAL archiving
 * through the reeve-agent binary (archive_command and wal-fetch), a backup
 * killed with SIGKILL mid-upload, the scheduler running with and without a
 * (fake) reconciler, and the hooks (pre/post scripts, notifications).
 *
 * One server "bk-0" on 127.0.11.1, under /tmp/reeve-backup-test-XXXXXX; when
 * run as root the server runs as postgres. The tests run in order and share
 * it. REEVE_AGENT_BIN names the reeve-agent binary.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "backup_cmd.h"
#include "backup_db.h"
#include "backup_pg.h"
#include "backupd.h"
#include "config.h"
#include "db.h"
#include "engine_pg.h"
#include "testutil_pg.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define S3_SECRET "wJalrXUtnFEMI-not-in-the-clear-K7MDENG"

/* --- a fake reconciler: GET /v1/agents/config, GET /v1/dcs/kv,
 * POST /v1/agents/backups --- */

struct fake {
    int port;
    int fd;
    pthread_t th;
    atomic_bool stop;
    bool running;
    pthread_mutex_t mu;
    char *config;       /* the answer to GET /v1/agents/config */
    int backups_status; /* answer to POST /v1/agents/backups */
    json_t *received;   /* records accepted (200 answers only) */
    int posts;          /* POSTs seen, whatever the answer */
    char *kvs;          /* the answer to GET /v1/dcs/kv (NULL: none) */
};

static void fake_reply(int c, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));
    if (write(c, head, (size_t)n) < 0 || write(c, body, strlen(body)) < 0)
        return;
}

static void fake_serve(struct fake *f, int c)
{
    char *req = malloc(1 << 20);
    size_t len = 0;
    char *body = NULL;
    long clen = 0;
    if (req == NULL)
        return;
    for (;;) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0)
            goto out;
        ssize_t n = read(c, req + len, (1 << 20) - 1 - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        req[len] = '\0';
        char *end = strstr(req, "\r\n\r\n");
        if (end == NULL)
            continue;
        char *cl = strcasestr(req, "Content-Length:");
        clen = cl != NULL && cl < end ? atol(cl + 15) : 0;
        if ((size_t)(end + 4 - req) + (size_t)clen <= len) {
            body = end + 4;
            break;
        }
    }
    pthread_mutex_lock(&f->mu);
    if (strncmp(req, "GET /v1/agents/config", 21) == 0) {
        fake_reply(c, 200, f->config);
    } else if (strncmp(req, "GET /v1/dcs/kv", 14) == 0) {
        fake_reply(c, 200, f->kvs != NULL ? f->kvs : "{\"revision\":1,\"kvs\":[]}");
    } else if (strncmp(req, "POST /v1/agents/backups", 23) == 0) {
        f->posts++;
        json_t *j = json_loadb(body, (size_t)clen, 0, NULL);
        if (f->backups_status == 200 && j != NULL)
            json_array_extend(f->received, json_object_get(j, "records"));
        json_decref(j);
        fake_reply(c, f->backups_status,
                   f->backups_status == 200 ? "{\"accepted\":1}" : "{\"error\":\"down\"}");
    } else {
        fake_reply(c, 404, "{\"error\":\"not found\"}");
    }
    pthread_mutex_unlock(&f->mu);
out:
    free(req);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            continue;
        fake_serve(f, c);
        close(c);
    }
    return NULL;
}

static int fake_start(struct fake *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    int one = 1;
    socklen_t al = sizeof(a);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(f->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(f->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(f->fd, 16) != 0) {
        close(f->fd);
        return -1;
    }
    getsockname(f->fd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    atomic_store(&f->stop, false);
    f->running = pthread_create(&f->th, NULL, fake_main, f) == 0;
    return f->running ? 0 : -1;
}

static void fake_stop(struct fake *f)
{
    if (!f->running)
        return;
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->fd);
    f->running = false;
}

/* --- fixture --- */

struct fixture {
    char base[64];
    char cfg_path[128];
    char store[128];
    char state[128];
    char data[128];
    char sock[128];
    const char *agent_bin;
    int port;
    struct agent_config cfg;
    bool cfg_ok;
    struct pg_engine e;
    bool e_ok;
    struct fake fake;
    char first_id[32]; /* the full backup of test_full_backup */
    char dest[512];
    pid_t s3_pid; /* destination JSON for config_json; "" for the local store */
};

static char *config_json(struct fixture *f, const char *digest, const char *method,
                         const char *requests, const char *test_cron)
{
    char *s = NULL, *local = NULL;
    const char *dest = f->dest;
    if (dest[0] == '\0') {
        if (asprintf(&local, "{\"kind\":\"local\",\"path\":\"%s\"}", f->store) < 0)
            return NULL;
        dest = local;
    }
    if (asprintf(&s,
                 "{\"cluster\":\"t/db\",\"engine\":\"postgresql\",\"digest\":\"%s\","
                 "\"backup\":{\"full_cron\":\"0 3 * * *\",\"incremental_cron\":null,"
                 "\"retention_days\":7,\"method\":\"%s\",\"program\":\"/bin/sh\","
                 "\"args\":[\"-c\",\"head -c 30000000 /dev/urandom; sleep 4\"],"
                 "\"prefer_replica\":false,\"pitr\":true,"
                 "\"destination\":%s,"
                 "\"encryption_key\":\"" KEY_HEX "\",\"test_restore_cron\":%s},"
                 "\"restore\":null,\"requests\":%s}",
                 digest, method, dest, test_cron, requests) < 0)
        s = NULL;
    free(local);
    return s;
}

/* Store a configuration into backup.db as the scheduler would. */
static void store_config(struct fixture *f, const char *digest, const char *method)
{
    struct backup_ctx c;
    struct rv_error err = {0};
    char *text = config_json(f, digest, method, "[]", "null");
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0 && c.db == NULL)
        fail_msg("ctx: %s", err.msg);
    if (backup_db_config_save(c.db, j, NULL, &err) != 0)
        fail_msg("save: %s", err.msg);
    backup_ctx_release(&c);
    json_decref(j);
    free(text);
}

static int write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs(text, fp);
    return fclose(fp);
}

static int setup(void **state)
{
    static struct fixture f;
    struct diag_list diags;
    struct rv_error err = {0};
    char yaml[2048];
    memset(&f, 0, sizeof(f));
    *state = &f;
    pthread_mutex_init(&f.fake.mu, NULL);
    f.fake.received = json_array();
    f.fake.backups_status = 503;
    if (!tu_have_pg())
        return 0;
    f.agent_bin = getenv("REEVE_AGENT_BIN");
    if (f.agent_bin == NULL)
        return -1;
    if (tu_tmpdir(f.base, sizeof(f.base), "reeve-backup-test", "postgres", 0711) != 0)
        return -1;
    snprintf(f.cfg_path, sizeof(f.cfg_path), "%s/agent.yaml", f.base);
    snprintf(f.store, sizeof(f.store), "%s/store", f.base);
    snprintf(f.state, sizeof(f.state), "%s/state", f.base);
    snprintf(f.data, sizeof(f.data), "%s/data", f.base);
    snprintf(f.sock, sizeof(f.sock), "%s/sock", f.base);
    /* The store is written by the agent and, for WAL, by the server's user. */
    mkdir(f.store, 0700);
    if (tu_chown(f.store, "postgres") != 0)
        return -1;
    if (fake_start(&f.fake) != 0)
        return -1;
    f.port = tu_port(0);
    setenv("REEVE_TEST_REPL_PW", "repl-secret", 1);
    snprintf(yaml, sizeof(yaml),
             "node: bk-0\ncluster: t/db\nreconciler: http://127.0.0.1:%d\n"
             "state_dir: %s\nengine:\n  type: postgresql\n  bin_dir: " TU_PG_BIN "\n"
             "  data_dir: %s\n  socket_dir: %s\n  listen_address: 127.0.11.1\n  port: %d\n"
             "  replication_password: env:REEVE_TEST_REPL_PW\n  os_user: postgres\n"
             "  no_sync: true\n",
             f.fake.port, f.state, f.data, f.sock, f.port);
    if (write_text(f.cfg_path, yaml) != 0)
        return -1;
    chmod(f.cfg_path, 0644);
    diag_list_init(&diags);
    if (agent_config_load(&f.cfg, f.cfg_path, &diags) != 0) {
        diag_list_print(stderr, &diags);
        diag_list_release(&diags);
        return -1;
    }
    diag_list_release(&diags);
    f.cfg_ok = true;
    if (backup_engine_params(&f.cfg, f.agent_bin, &err) != 0) {
        fprintf(stderr, "engine params: %s\n", err.msg);
        return -1;
    }
    struct pg_engine_config pc = {
        .bin_dir = TU_PG_BIN,
        .data_dir = f.data,
        .socket_dir = f.sock,
        .listen_address = "127.0.11.1",
        .port = f.port,
        .superuser = f.cfg.pg.superuser,
        .replication_user = f.cfg.pg.replication_user,
        .replication_password = f.cfg.pg.replication_password,
        .application_name = "bk-0",
        .os_user = tu_pg_os_user(),
        .extra = f.cfg.pg.params,
        .n_extra = f.cfg.pg.n_params,
        .no_sync = true,
    };
    if (pg_engine_init(&f.e, &pc, &err) != 0) {
        fprintf(stderr, "engine: %s\n", err.msg);
        return -1;
    }
    f.e_ok = true;
    if (pg_engine_initdb(&f.e, &err) != 0) {
        fprintf(stderr, "initdb: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct rv_error err = {0};
    fake_stop(&f->fake);
    if (f->s3_pid > 0) {
        kill(f->s3_pid, SIGTERM);
        waitpid(f->s3_pid, NULL, 0);
    }
    if (f->e_ok) {
        pg_engine_stop(&f->e, PG_STOP_IMMEDIATE, &err);
        pg_engine_release(&f->e);
    }
    if (f->cfg_ok)
        agent_config_release(&f->cfg);
    json_decref(f->fake.received);
    free(f->fake.kvs);
    free(f->fake.config);
    tu_rm_test_dir(f->base);
    return 0;
}

static bool sql(struct fixture *f, const char *q, char *out, size_t cap)
{
    return tu_pg_query(f->sock, f->port, f->cfg.pg.superuser, "bk-0", q, out, cap);
}

/* Run the agent binary; its exit code, stdout and stderr (each may be NULL). */
static int run_agent(struct fixture *f, const char *const *args, char *out, size_t out_cap,
                     char *errb, size_t err_cap)
{
    char cmd[4096];
    char outp[128], errp[128];
    size_t n = 0;
    snprintf(outp, sizeof(outp), "%s/cmd.out", f->base);
    snprintf(errp, sizeof(errp), "%s/cmd.err", f->base);
    n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "'%s'", f->agent_bin);
    for (size_t i = 0; args[i] != NULL; i++)
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " '%s'", args[i]);
    snprintf(cmd + n, sizeof(cmd) - n, " >%s 2>%s", outp, errp);
    int st = system(cmd);
    const char *paths[2] = {outp, errp};
    char *bufs[2] = {out, errb};
    size_t caps[2] = {out_cap, err_cap};
    for (int i = 0; i < 2; i++) {
        if (bufs[i] == NULL)
            continue;
        FILE *fp = fopen(paths[i], "r");
        size_t got = fp != NULL ? fread(bufs[i], 1, caps[i] - 1, fp) : 0;
        bufs[i][got] = '\0';
        if (fp != NULL)
            fclose(fp);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --- the local database --- */

static bool file_has(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    bool found = false;
    if (fp == NULL)
        return false;
    static char buf[4 << 20];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    found = memmem(buf, n, needle, strlen(needle)) != NULL;
    return found;
}

static void test_backup_db(void **state)
{
    struct fixture *f = *state;
    struct backup_db *b = NULL;
    struct rv_error err = {0};
    char dir[128], path[160];
    json_t *cfg = NULL, *back = NULL, *recs = NULL;
    char *s = NULL;
    bool changed = false;
    TU_SKIP_WITHOUT_PG();
    snprintf(dir, sizeof(dir), "%s/dbtest", f->base);
    assert_int_equal(backup_db_open(&b, dir, false, (uid_t)-1, (gid_t)-1, &err), RV_ENOTFOUND);
    if (backup_db_open(&b, dir, true, (uid_t)-1, (gid_t)-1, &err) != 0)
        fail_msg("open: %s", err.msg);
    cfg = json_pack("{s:s,s:{s:s,s:{s:s,s:s,s:s,s:s},s:s}}", "digest", "abc", "backup", "full_cron",
                    "0 2 * * *", "destination", "kind", "s3", "bucket", "b", "access_key_id",
                    "AKIA-VISIBLE-NOT", "secret_access_key", S3_SECRET, "encryption_key", KEY_HEX);
    assert_int_equal(backup_db_config_save(b, cfg, &changed, &err), 0);
    assert_true(changed);
    assert_int_equal(backup_db_config_save(b, cfg, &changed, &err), 0);
    assert_false(changed); /* same digest */
    assert_int_equal(backup_db_config_load(&back, b, &err), 0);
    assert_true(json_equal(cfg, back));
    assert_int_equal(backup_db_secret_set(b, "reeve_backup.password", "pw-in-the-clear-xyz", &err),
                     0);
    assert_int_equal(backup_db_secret_get(&s, b, "reeve_backup.password", &err), 0);
    assert_string_equal(s, "pw-in-the-clear-xyz");
    free(s);
    s = NULL;
    /* A sealed value does not open under another name. */
    assert_int_equal(backup_db_seal(&s, b, "a", "value", &err), 0);
    char *o = NULL;
    assert_int_equal(backup_db_unseal(&o, b, "b", s, &err), RV_EINTEGRITY);
    s[strlen(s) - 3] = s[strlen(s) - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(backup_db_unseal(&o, b, "a", s, &err), RV_EINTEGRITY);
    free(s);
    /* Records: upsert, unsynced list, synced only for the same content. */
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s}", "backup_id", "20260101T000000Z-00000001",
                            "schedule", "manual", "status", "running", "type", "full", "started_at",
                            "2026-01-01T00:00:00.000Z");
    assert_int_equal(backup_db_record_put(b, rec, &err), 0);
    assert_int_equal(backup_db_records(&recs, b, true, 10, &err), 0);
    assert_int_equal(json_array_size(recs), 1);
    char *old = json_dumps(json_array_get(recs, 0), JSON_COMPACT);
    json_object_set_new(rec, "status", json_string("succeeded"));
    assert_int_equal(backup_db_record_put(b, rec, &err), 0);
    assert_int_equal(backup_db_record_synced(b, "20260101T000000Z-00000001", old, &err), 0);
    json_decref(recs);
    assert_int_equal(backup_db_records(&recs, b, true, 10, &err), 0);
    assert_int_equal(json_array_size(recs), 1); /* changed since: still unsynced */
    free(old);
    backup_db_log(b, "20260101T000000Z-00000001", "info", "hello %d", 1);
    /* Pruning forgets only synced records. */
    size_t removed = 9;
    assert_int_equal(backup_db_prune(b, "2027-01-01T00:00:00.000Z", &removed, &err), 0);
    assert_int_equal(removed, 0);
    old = json_dumps(rec, JSON_COMPACT);
    assert_int_equal(backup_db_record_synced(b, "20260101T000000Z-00000001", old, &err), 0);
    free(old);
    assert_int_equal(backup_db_prune(b, "2025-01-01T00:00:00.000Z", &removed, &err), 0);
    assert_int_equal(removed, 0);
    /* ... and only once its log lines were sent too. */
    assert_int_equal(backup_db_prune(b, "2027-01-01T00:00:00.000Z", &removed, &err), 0);
    assert_int_equal(removed, 0);
    json_t *lines = NULL, *line_ids = NULL, *none = json_array();
    assert_int_equal(backup_db_logs_unsynced(&lines, &line_ids, b, none, 10, &err), 0);
    assert_int_equal(json_array_size(lines), 1);
    assert_int_equal(backup_db_logs_synced(b, line_ids, &err), 0);
    json_decref(lines);
    json_decref(line_ids);
    json_decref(none);
    assert_int_equal(backup_db_prune(b, "2027-01-01T00:00:00.000Z", &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(backup_db_record_put(b, rec, &err), 0);
    backup_db_free(b);
    /* Nothing secret in the clear on disk. */
    const char *files[] = {"backup.db", "backup.db-wal"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        assert_false(file_has(path, S3_SECRET));
        assert_false(file_has(path, KEY_HEX));
        assert_false(file_has(path, "pw-in-the-clear-xyz"));
    }
    snprintf(path, sizeof(path), "%s/backup.db", dir);
    assert_true(file_has(path, "0 2 * * *") ||
                file_has(strcat(path, "-wal"), "0 2 * * *")); /* the rest is readable */
    struct stat sb;
    snprintf(path, sizeof(path), "%s/node.key", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Reopen: the same key opens the same secrets. */
    assert_int_equal(backup_db_open(&b, dir, false, (uid_t)-1, (gid_t)-1, &err), 0);
    json_decref(back);
    assert_int_equal(backup_db_config_load(&back, b, &err), 0);
    assert_true(json_equal(cfg, back));
    backup_db_free(b);
    json_decref(recs);
    json_decref(rec);
    json_decref(cfg);
    json_decref(back);
}

/* --- a full backup --- */

static bool is_hex(const char *s, size_t n)
{
    return s != NULL && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static void test_full_backup(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    json_t *rec = NULL;
    char key[96];
    int64_t size = 0;
    TU_SKIP_WITHOUT_PG();
    assert_true(sql(f,
                    "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v "
                    "FROM generate_series(1, 50000) g",
                    NULL, 0));
    store_config(f, "d1", "pg_basebackup");
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    assert_non_null(c.store);
    if (backup_role_ensure(&c, true, &err) != 0)
        fail_msg("role: %s", err.msg);
    char out[16];
    assert_true(sql(f, "SELECT rolreplication FROM pg_roles WHERE rolname = 'reeve_backup'", out,
                    sizeof(out)));
    assert_string_equal(out, "t");
    if (backup_full(&rec, &c, "manual", &err) != 0)
        fail_msg("backup: %s", err.msg);
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    assert_non_null(id);
    snprintf(f->first_id, sizeof(f->first_id), "%s", id);
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(rec, "set_id")), id);
    assert_string_equal(json_string_value(json_object_get(rec, "cluster")), "t/db");
    assert_string_equal(json_string_value(json_object_get(rec, "node")), "bk-0");
    assert_string_equal(json_string_value(json_object_get(rec, "method")), "pg_basebackup");
    assert_true(json_is_true(json_object_get(rec, "encrypted")));
    assert_true(is_hex(json_string_value(json_object_get(rec, "checksum")), 64));
    assert_true(json_integer_value(json_object_get(rec, "size")) > 0);
    assert_true(json_integer_value(json_object_get(rec, "raw_size")) >
                json_integer_value(json_object_get(rec, "size")));
    assert_int_equal(json_integer_value(json_object_get(rec, "timeline")), 1);
    assert_non_null(json_string_value(json_object_get(rec, "start_lsn")));
    assert_non_null(json_string_value(json_object_get(rec, "end_lsn")));
    assert_true(json_is_null(json_object_get(rec, "error")));
    char loc[256];
    snprintf(loc, sizeof(loc), "file://%s/base/%s/data", f->store, id);
    assert_string_equal(json_string_value(json_object_get(rec, "location")), loc);
    /* The store has the data and the manifest, whose size matches. */
    snprintf(key, sizeof(key), "base/%s/data", id);
    assert_int_equal(c.store->stat(c.store, key, &size, &err), 0);
    assert_int_equal(size, json_integer_value(json_object_get(rec, "size")));
    snprintf(key, sizeof(key), "base/%s/manifest.json", id);
    assert_int_equal(c.store->stat(c.store, key, &size, &err), 0);
    assert_int_equal(
        backup_verify_checksum(&c, id, json_string_value(json_object_get(rec, "checksum")), &err),
        0);
    /* The record in backup.db is the same, not yet synced. */
    json_t *stored = NULL, *uns = NULL;
    assert_int_equal(backup_db_record_get(&stored, c.db, id, &err), 0);
    assert_true(json_equal(stored, rec));
    assert_int_equal(backup_db_records(&uns, c.db, true, 0, &err), 0);
    assert_int_equal(json_array_size(uns), 1);
    json_decref(uns);
    json_decref(stored);

    /* Retention: an old backup and old WAL go; the new backup stays. */
    const char *old_manifest =
        "{\"backup_id\":\"20200101T000000Z-00000000\",\"type\":\"full\",\"status\":\"succeeded\","
        "\"started_at\":\"2020-01-01T00:00:00.000Z\",\"start_lsn\":\"0/1000028\"}";
    const char *const objs[][2] = {{"base/20200101T000000Z-00000000/manifest.json", old_manifest},
                                   {"base/20200101T000000Z-00000000/data", "x"},
                                   {"wal/00000001/000000010000000000000000", "y"},
                                   {"wal/00000001/00000001.history", "z"},
                                   {"base/20200102T000000Z-0000000a/data", "orphan"}};
    for (size_t i = 0; i < 5; i++) {
        struct rv_sink *s = NULL;
        assert_int_equal(c.store->put(c.store, objs[i][0], &s, &err), 0);
        assert_int_equal(rv_sink_write(s, objs[i][1], strlen(objs[i][1]), &err), 0);
        assert_int_equal(rv_sink_finish(s, &err), 0);
    }
    size_t deleted = 0;
    if (backup_retention(&c, backup_now_ms(), &deleted, &err) != 0)
        fail_msg("retention: %s", err.msg);
    /* The old backup's two objects, the old segment, and any segment the
     * server archived before the new backup started. */
    assert_true(deleted >= 4);
    assert_int_equal(c.store->stat(c.store, objs[4][0], &size, &err), RV_ENOTFOUND);
    assert_int_equal(c.store->stat(c.store, objs[0][0], &size, &err), RV_ENOTFOUND);
    assert_int_equal(c.store->stat(c.store, objs[2][0], &size, &err), RV_ENOTFOUND);
    assert_int_equal(c.store->stat(c.store, objs[3][0], &size, &err), 0);
    snprintf(key, sizeof(key), "base/%s/data", id);
    assert_int_equal(c.store->stat(c.store, key, &size, &err), 0);
    /* With everything past retention, the newest succeeded full stays. */
    assert_int_equal(backup_retention(&c, backup_now_ms() + 30LL * 86400 * 1000, &deleted, &err),
                     0);
    assert_int_equal(c.store->stat(c.store, key, &size, &err), 0);
    json_decref(rec);
    backup_ctx_release(&c);
}

/* --- WAL through the binary --- */

static void test_wal_roundtrip(void **state)
{
    struct fixture *f = *state;
    char seg[64] = "", key[128], got[256], want[256], errb[1024];
    struct backup_ctx c;
    struct rv_error err = {0};
    int64_t size = 0;
    TU_SKIP_WITHOUT_PG();
    assert_true(sql(f, "SHOW archive_mode", seg, sizeof(seg)));
    assert_string_equal(seg, "on");
    assert_true(sql(f, "INSERT INTO t SELECT g, 'more' FROM generate_series(1, 1000) g", NULL, 0));
    assert_true(sql(f, "SELECT pg_walfile_name(pg_current_wal_lsn())", seg, sizeof(seg)));
    assert_true(sql(f, "SELECT pg_switch_wal()", NULL, 0));
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    snprintf(key, sizeof(key), "wal/%.8s/%s", seg, seg);
    int64_t deadline = tu_now_ms() + 20000;
    while (c.store->stat(c.store, key, &size, &err) != 0 && tu_now_ms() < deadline)
        tu_sleep_ms(100);
    if (c.store->stat(c.store, key, &size, &err) != 0) {
        char fails[32] = "";
        sql(f, "SELECT failed_count FROM pg_stat_archiver", fails, sizeof(fails));
        fail_msg("'%s' was not archived (archiver failures: %s)", key, fails);
    }
    /* The archived copy is encoded (encrypted): not the segment's bytes. */
    snprintf(want, sizeof(want), "%s/pg_wal/%s", f->data, seg);
    snprintf(got, sizeof(got), "%s/fetched", f->base);
    const char *fetch[] = {"wal-fetch", "-c", f->cfg_path, seg, got, NULL};
    assert_int_equal(run_agent(f, fetch, NULL, 0, errb, sizeof(errb)), 0);
    char cmp[600];
    snprintf(cmp, sizeof(cmp), "cmp -s '%s' '%s'", want, got);
    assert_int_equal(system(cmp), 0);
    /* Pushing it again is fine (same content). */
    const char *push[] = {"wal-push", "-c", f->cfg_path, want, NULL};
    assert_int_equal(run_agent(f, push, NULL, 0, errb, sizeof(errb)), 0);
    /* A different file under the same name is refused. */
    char other[160];
    snprintf(other, sizeof(other), "%s/%s", f->base, seg);
    write_text(other, "not the segment");
    const char *push2[] = {"wal-push", "-c", f->cfg_path, other, NULL};
    assert_int_equal(run_agent(f, push2, NULL, 0, errb, sizeof(errb)), 1);
    assert_non_null(strstr(errb, "different content"));
    /* Absent: exit 1, quietly. */
    const char *absent[] = {"wal-fetch", "-c", f->cfg_path, "0000000100000000000000FF", got, NULL};
    assert_int_equal(run_agent(f, absent, NULL, 0, errb, sizeof(errb)), 1);
    assert_string_equal(errb, "");
    backup_ctx_release(&c);
}

/* --- kill -9 mid-upload --- */

static void test_kill_mid_upload(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    json_t *recs = NULL;
    char id[32] = "";
    TU_SKIP_WITHOUT_PG();
    /* An external program that streams 30 MB and then hangs. */
    store_config(f, "d2", "external");
    const char *agent_args[] = {"reeve-agent", "backup", "-c", f->cfg_path, NULL};
    pid_t pid = tu_spawn_as(NULL, f->agent_bin, agent_args, -1, NULL, NULL);
    assert_true(pid > 0);
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    /* Wait for its record, then for the stream to be under way. */
    int64_t deadline = tu_now_ms() + 20000;
    while (id[0] == '\0' && tu_now_ms() < deadline) {
        json_decref(recs);
        assert_int_equal(backup_db_records(&recs, c.db, false, 0, &err), 0);
        size_t i;
        json_t *r;
        json_array_foreach(recs, i, r)
        {
            if (strcmp(json_string_value(json_object_get(r, "status")), "running") == 0)
                snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r, "backup_id")));
        }
        tu_sleep_ms(50);
    }
    assert_true(id[0] != '\0');
    tu_sleep_ms(1500);
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    /* No record claims success, no object under the final key. */
    json_t *r = NULL;
    assert_int_equal(backup_db_record_get(&r, c.db, id, &err), 0);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "running");
    json_decref(r);
    char key[96];
    int64_t size = 0;
    snprintf(key, sizeof(key), "base/%s/data", id);
    assert_int_equal(c.store->stat(c.store, key, &size, &err), RV_ENOTFOUND);
    snprintf(key, sizeof(key), "base/%s/manifest.json", id);
    assert_int_equal(c.store->stat(c.store, key, &size, &err), RV_ENOTFOUND);
    backup_ctx_release(&c);
    tu_sleep_ms(100);
    /* The next run succeeds, and says the killed one failed. */
    store_config(f, "d3", "pg_basebackup");
    char out[16384], errb[8192];
    const char *args[] = {"backup", "-c", f->cfg_path, "--json", NULL};
    int code = run_agent(f, args, out, sizeof(out), errb, sizeof(errb));
    if (code != 0)
        fail_msg("backup: exit %d: %s", code, errb);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(j, "schedule")), "manual");
    assert_non_null(strstr(errb, "MiB stored")); /* progress on stderr */
    char new_id[32];
    snprintf(new_id, sizeof(new_id), "%s", json_string_value(json_object_get(j, "backup_id")));
    json_decref(j);
    /* backups verify / list */
    const char *ver[] = {"backups", "verify", "-c", f->cfg_path, new_id, NULL};
    assert_int_equal(run_agent(f, ver, out, sizeof(out), errb, sizeof(errb)), 0);
    assert_non_null(strstr(out, " ok"));
    const char *lst[] = {"backups", "list", "-c", f->cfg_path, "--json", NULL};
    assert_int_equal(run_agent(f, lst, out, sizeof(out), errb, sizeof(errb)), 0);
    j = json_loads(out, 0, NULL);
    assert_true(json_is_array(j));
    bool listed = false;
    size_t li;
    json_t *lr;
    json_array_foreach(j, li, lr)
    {
        listed = listed || strcmp(json_string_value(json_object_get(lr, "backup_id")), id) == 0;
    }
    assert_true(listed);
    json_decref(j);
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    assert_int_equal(backup_db_record_get(&r, c.db, id, &err), 0);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "failed");
    json_decref(r);
    json_decref(recs);
    backup_ctx_release(&c);
}

/* --- the scheduler --- */

static int count_status(struct backup_ctx *c, const char *schedule, const char *status,
                        bool unsynced_only)
{
    struct rv_error err = {0};
    json_t *recs = NULL;
    int n = 0;
    size_t i;
    json_t *r;
    if (backup_db_records(&recs, c->db, unsynced_only, 0, &err) != 0)
        return -1;
    json_array_foreach(recs, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "schedule")), schedule) == 0 &&
            strcmp(json_string_value(json_object_get(r, "status")), status) == 0)
            n++;
    }
    json_decref(recs);
    return n;
}

static bool wait_for(struct backup_ctx *c, const char *schedule, const char *status,
                     bool unsynced_only, int want, int ms)
{
    int64_t deadline = tu_now_ms() + ms;
    while (tu_now_ms() < deadline) {
        if (count_status(c, schedule, status, unsynced_only) == want)
            return true;
        tu_sleep_ms(100);
    }
    return false;
}

static void test_scheduler(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    struct backupd *d = NULL;
    char tok[160];
    TU_SKIP_WITHOUT_PG();
    snprintf(tok, sizeof(tok), "%s/agent-token", f->state);
    assert_int_equal(
        write_text(tok, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"), 0);
    pthread_mutex_lock(&f->fake.mu);
    free(f->fake.config);
    f->fake.config =
        config_json(f, "d4", "pg_basebackup", "[{\"id\":\"final-k1\",\"kind\":\"full\"}]", "null");
    f->fake.backups_status = 503;
    pthread_mutex_unlock(&f->fake.mu);
    struct backupd_opts o = {.cfg = &f->cfg, .exe = f->agent_bin, .poll_ms = 200};
    if (backupd_start(&d, &o, &err) != 0)
        fail_msg("start: %s", err.msg);
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    /* The request runs once; its record stays unsynced while the
     * reconciler answers 503. */
    assert_true(wait_for(&c, "request:final-k1", "succeeded", true, 1, 30000));
    int64_t next = 0;
    int64_t deadline = tu_now_ms() + 5000;
    while (backup_db_next_get(&next, c.db, "full", "0 3 * * *", &err) != 0 &&
           tu_now_ms() < deadline)
        tu_sleep_ms(50);
    assert_true(next > backup_now_ms() / 1000);
    /* The reconciler goes away; the scheduled time comes. */
    fake_stop(&f->fake);
    assert_int_equal(backup_db_next_set(c.db, "full", "0 3 * * *", 1, &err), 0);
    assert_true(wait_for(&c, "scheduled", "succeeded", true, 1, 30000));
    assert_true(wait_for(&c, "request:final-k1", "succeeded", false, 1, 100)); /* once only */
    backupd_stop(d);
    d = NULL;
    /* Restart with the reconciler back: records go once it answers 200. */
    assert_int_equal(fake_start(&f->fake), 0);
    if (backupd_start(&d, &o, &err) != 0)
        fail_msg("restart: %s", err.msg);
    deadline = tu_now_ms() + 5000;
    while (tu_now_ms() < deadline) {
        pthread_mutex_lock(&f->fake.mu);
        int posts = f->fake.posts;
        pthread_mutex_unlock(&f->fake.mu);
        if (posts >= 2)
            break;
        tu_sleep_ms(50);
    }
    assert_int_equal(count_status(&c, "scheduled", "succeeded", true), 1); /* 503: unsynced */
    pthread_mutex_lock(&f->fake.mu);
    f->fake.backups_status = 200;
    pthread_mutex_unlock(&f->fake.mu);
    assert_true(wait_for(&c, "scheduled", "succeeded", true, 0, 5000));
    assert_true(wait_for(&c, "request:final-k1", "succeeded", true, 0, 5000));
    pthread_mutex_lock(&f->fake.mu);
    bool seen = false;
    size_t i;
    json_t *r;
    json_array_foreach(f->fake.received, i, r)
    {
        const char *s = json_string_value(json_object_get(r, "schedule"));
        seen = seen || (s != NULL && strcmp(s, "scheduled") == 0);
    }
    pthread_mutex_unlock(&f->fake.mu);
    assert_true(seen);

    /* A scheduled test restore of the newest full backup: its record gets
     * "verify" and is sent again. */
    pthread_mutex_lock(&f->fake.mu);
    free(f->fake.config);
    f->fake.config = config_json(f, "d5", "pg_basebackup",
                                 "[{\"id\":\"final-k1\",\"kind\":\"full\"}]", "\"0 4 * * *\"");
    pthread_mutex_unlock(&f->fake.mu);
    deadline = tu_now_ms() + 5000;
    while (backup_db_next_get(&next, c.db, "test-restore", "0 4 * * *", &err) != 0 &&
           tu_now_ms() < deadline)
        tu_sleep_ms(50);
    assert_int_equal(backup_db_next_set(c.db, "test-restore", "0 4 * * *", 1, &err), 0);
    json_t *verify = NULL;
    deadline = tu_now_ms() + 60000;
    while (verify == NULL && tu_now_ms() < deadline) {
        json_t *recs = NULL;
        assert_int_equal(backup_db_records(&recs, c.db, false, 0, &err), 0);
        json_array_foreach(recs, i, r)
        {
            if (json_is_object(json_object_get(r, "verify")))
                verify = json_incref(json_object_get(r, "verify"));
        }
        json_decref(recs);
        tu_sleep_ms(200);
    }
    assert_non_null(verify);
    const char *vk = json_string_value(json_object_get(verify, "kind"));
    const char *vs = json_string_value(json_object_get(verify, "status"));
    if (strcmp(vk, "restore") != 0 || strcmp(vs, "ok") != 0)
        fail_msg("verify: %s %s: %s", vk, vs, json_string_value(json_object_get(verify, "error")));
    json_decref(verify);
    backupd_stop(d);
    backup_ctx_release(&c);
}

static void set_view(struct fixture *f, bool replica_healthy)
{
    pthread_mutex_lock(&f->fake.mu);
    free(f->fake.kvs);
    if (asprintf(&f->fake.kvs,
                 "{\"revision\":1,\"kvs\":[{\"key\":\"/clusters/t/db/nodes/bk-0\",\"value\":"
                 "{\"node\":\"bk-0\",\"role\":\"primary\",\"healthy\":true,\"lag_bytes\":0}},"
                 "{\"key\":\"/clusters/t/db/nodes/bk-1\",\"value\":{\"node\":\"bk-1\","
                 "\"role\":\"replica\",\"healthy\":%s,\"lag_bytes\":0}}]}",
                 replica_healthy ? "true" : "false") < 0)
        f->fake.kvs = NULL;
    pthread_mutex_unlock(&f->fake.mu);
}

/* Wait until the cached view says what set_view said. */
static bool wait_view(struct backup_ctx *c, bool replica_healthy)
{
    int64_t deadline = tu_now_ms() + 5000;
    const char *want = replica_healthy ? "\"healthy\":true,\"lag_bytes\":0,\"node\":\"bk-1\""
                                       : "\"healthy\":false,\"lag_bytes\":0,\"node\":\"bk-1\"";
    while (tu_now_ms() < deadline) {
        struct rv_error err = {0};
        char *v = NULL;
        json_t *j = NULL;
        bool ok = false;
        if (backup_db_state_get(&v, c->db, "view", &err) == 0 && (j = json_loads(v, 0, NULL))) {
            char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
            ok = t != NULL && strstr(t, want) != NULL;
            free(t);
        }
        json_decref(j);
        free(v);
        if (ok)
            return true;
        tu_sleep_ms(50);
    }
    return false;
}

/* Wait until the full job was rescheduled into the future. */
static bool wait_advanced(struct backup_ctx *c)
{
    int64_t deadline = tu_now_ms() + 10000;
    while (tu_now_ms() < deadline) {
        struct rv_error err = {0};
        int64_t next = 0;
        if (backup_db_next_get(&next, c->db, "full", "0 3 * * *", &err) == 0 &&
            next > backup_now_ms() / 1000)
            return true;
        tu_sleep_ms(50);
    }
    return false;
}

static void test_prefer_replica(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    struct backupd *d = NULL;
    static const char from[] = "\"prefer_replica\":false,";
    static const char to[] = "\"prefer_replica\":true,";
    TU_SKIP_WITHOUT_PG();
    char *cfg = config_json(f, "d6", "pg_basebackup", "[]", "null");
    char *p = strstr(cfg, from);
    assert_non_null(p);
    memmove(p + strlen(to), p + strlen(from), strlen(p + strlen(from)) + 1);
    memcpy(p, to, strlen(to));
    pthread_mutex_lock(&f->fake.mu);
    free(f->fake.config);
    f->fake.config = cfg;
    pthread_mutex_unlock(&f->fake.mu);
    set_view(f, true);
    struct backupd_opts o = {.cfg = &f->cfg, .exe = f->agent_bin, .poll_ms = 200};
    if (backupd_start(&d, &o, &err) != 0)
        fail_msg("start: %s", err.msg);
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    int before = count_status(&c, "scheduled", "succeeded", false);
    /* A healthy replica is known: the primary leaves the backup to it. */
    assert_true(wait_view(&c, true));
    assert_int_equal(backup_db_next_set(c.db, "full", "0 3 * * *", 1, &err), 0);
    assert_true(wait_advanced(&c));
    tu_sleep_ms(500);
    assert_int_equal(count_status(&c, "scheduled", "succeeded", false), before);
    assert_int_equal(count_status(&c, "scheduled", "running", false), 0);
    /* No healthy replica: the primary backs up. */
    set_view(f, false);
    assert_true(wait_view(&c, false));
    assert_int_equal(backup_db_next_set(c.db, "full", "0 3 * * *", 1, &err), 0);
    assert_true(wait_for(&c, "scheduled", "succeeded", false, before + 1, 30000));
    backupd_stop(d);
    backup_ctx_release(&c);
}

/* --- an S3 destination (tests/peers/s3-server.js) --- */

static void test_s3_destination(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    char src[256], script[320], dir[160], ready[160], out[16384], errb[8192], seg[64] = "";
    const char *srcdir = getenv("REEVE_SOURCE_DIR");
    TU_SKIP_WITHOUT_PG();
    snprintf(src, sizeof(src), "%s/tests/peers/node_modules", srcdir != NULL ? srcdir : ".");
    if (srcdir == NULL || access("/usr/bin/node", X_OK) != 0 || access(src, F_OK) != 0) {
        fprintf(stderr, "skipped: node or tests/peers/node_modules missing\n");
        skip();
    }
    snprintf(script, sizeof(script), "%s/tests/peers/s3-server.js", srcdir);
    snprintf(dir, sizeof(dir), "%s/s3", f->base);
    snprintf(ready, sizeof(ready), "%s/s3.port", f->base);
    mkdir(dir, 0700);
    const char *node_args[] = {"node",     script,         "--port",       "0",        "--dir",
                               dir,        "--access-key", "AKTEST",       "--secret", S3_SECRET,
                               "--bucket", "bkt",          "--ready-file", ready,      NULL};
    pid_t pid = tu_spawn_as(NULL, "/usr/bin/node", node_args, -1, NULL, NULL);
    assert_true(pid > 0);
    f->s3_pid = pid; /* teardown stops it if an assertion ends the test */
    int port = 0;
    int64_t deadline = tu_now_ms() + 20000;
    while (port == 0 && tu_now_ms() < deadline) {
        FILE *fp = fopen(ready, "r");
        if (fp != NULL) {
            if (fscanf(fp, "%d", &port) != 1)
                port = 0;
            fclose(fp);
        }
        tu_sleep_ms(50);
    }
    if (port == 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        fail_msg("the S3 server did not start");
    }
    snprintf(f->dest, sizeof(f->dest),
             "{\"kind\":\"s3\",\"endpoint\":\"http://127.0.0.1:%d\",\"region\":\"us-east-1\","
             "\"bucket\":\"bkt\",\"prefix\":\"pfx\",\"access_key_id\":\"AKTEST\","
             "\"secret_access_key\":\"" S3_SECRET "\"}",
             port);
    store_config(f, "d7", "pg_basebackup");
    /* A full backup into S3 through the binary. */
    const char *args[] = {"backup", "-c", f->cfg_path, "--json", NULL};
    int code = run_agent(f, args, out, sizeof(out), errb, sizeof(errb));
    json_t *j = json_loads(out, 0, NULL);
    if (code != 0 || j == NULL)
        fail_msg("backup to s3: exit %d: %s", code, errb);
    const char *id = json_string_value(json_object_get(j, "backup_id"));
    char loc[160];
    snprintf(loc, sizeof(loc), "s3://bkt/pfx/base/%s/data", id);
    assert_string_equal(json_string_value(json_object_get(j, "location")), loc);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "succeeded");
    const char *ver[] = {"backups", "verify", "-c", f->cfg_path, id, NULL};
    assert_int_equal(run_agent(f, ver, NULL, 0, errb, sizeof(errb)), 0);
    /* WAL archiving follows the configuration to S3. */
    assert_true(sql(f, "INSERT INTO t SELECT g, 's3' FROM generate_series(1, 100) g", NULL, 0));
    assert_true(sql(f, "SELECT pg_walfile_name(pg_current_wal_lsn())", seg, sizeof(seg)));
    assert_true(sql(f, "SELECT pg_switch_wal()", NULL, 0));
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    char key[128];
    int64_t size = 0;
    snprintf(key, sizeof(key), "wal/%.8s/%s", seg, seg);
    deadline = tu_now_ms() + 20000;
    while (c.store->stat(c.store, key, &size, &err) != 0 && tu_now_ms() < deadline)
        tu_sleep_ms(100);
    assert_int_equal(c.store->stat(c.store, key, &size, &err), 0);
    backup_ctx_release(&c);
    /* The cloud credentials are not in the clear on the node. */
    char path[200];
    snprintf(path, sizeof(path), "%s/backup/backup.db", f->state);
    assert_false(file_has(path, S3_SECRET));
    snprintf(path, sizeof(path), "%s/backup/backup.db-wal", f->state);
    assert_false(file_has(path, S3_SECRET));
    json_decref(j);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    f->s3_pid = 0;
    f->dest[0] = '\0';
    store_config(f, "d8", "pg_basebackup");
}

/* --- hooks: pre/post scripts and notifications --- */

/* Store the configuration with `extra` (stolen) merged into its backup
 * section, as the scheduler would. */
static void store_config_with(struct fixture *f, const char *digest, const char *method,
                              json_t *extra)
{
    struct backup_ctx c;
    struct rv_error err = {0};
    char *text = config_json(f, digest, method, "[]", "null");
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_non_null(extra);
    assert_int_equal(json_object_update(json_object_get(j, "backup"), extra), 0);
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0 && c.db == NULL)
        fail_msg("ctx: %s", err.msg);
    if (backup_db_config_save(c.db, j, NULL, &err) != 0)
        fail_msg("save: %s", err.msg);
    backup_ctx_release(&c);
    json_decref(extra);
    json_decref(j);
    free(text);
}

/* A hook command: writes its environment to <dir>/<name>.env, the time in
 * nanoseconds to <name>.ns, appends <name> to <dir>/seq, then runs `tail`. */
static void hook_cmd(char *out, size_t cap, const char *dir, const char *name, const char *tail)
{
    snprintf(out, cap,
             "D='%s'; env > \"$D/%s.env\"; id -un > \"$D/%s.user\"; date +%%s%%N > \"$D/%s.ns\"; "
             "echo %s >> \"$D/seq\"%s",
             dir, name, name, name, name, tail);
}

static json_t *hooks_json(const char *dir, const char *pre_tail)
{
    char pre[512], post[512], ok[512], bad[512];
    hook_cmd(pre, sizeof(pre), dir, "pre", pre_tail);
    hook_cmd(post, sizeof(post), dir, "post", "");
    hook_cmd(ok, sizeof(ok), dir, "ok", "");
    hook_cmd(bad, sizeof(bad), dir, "failed", "");
    return json_pack("{s:s,s:s,s:{s:s,s:s}}", "pre_script", pre, "post_script", post, "notify",
                     "success", ok, "failure", bad);
}

static void hooks_reset(const char *dir)
{
    const char *names[] = {"pre", "post", "ok", "failed"};
    char path[256];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s.env", dir, names[i]);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s.ns", dir, names[i]);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s.user", dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/seq", dir);
    unlink(path);
}

/* The text of <dir>/<file> ("" when absent). */
static void read_in(char *out, size_t cap, const char *dir, const char *file)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *fp = fopen(path, "r");
    size_t n = fp != NULL ? fread(out, 1, cap - 1, fp) : 0;
    out[n] = '\0';
    if (fp != NULL)
        fclose(fp);
}

/* Assert that `key` has the value `want` in <dir>/<name>.env. */
static void assert_env(const char *dir, const char *name, const char *key, const char *want)
{
    char file[64], text[16384], needle[1200];
    snprintf(file, sizeof(file), "%s.env", name);
    read_in(text, sizeof(text), dir, file);
    if (text[0] == '\0')
        fail_msg("%s/%s was not written: the %s hook did not run", dir, file, name);
    snprintf(needle, sizeof(needle), "\n%s=%s\n", key, want);
    /* env lines: match whole lines, the first one too */
    char framed[sizeof(text) + 2];
    snprintf(framed, sizeof(framed), "\n%s", text);
    if (strstr(framed, needle) == NULL)
        fail_msg("%s hook: no line '%s=%s' in its environment:\n%s", name, key, want, text);
}

static int64_t ns_in(const char *dir, const char *name)
{
    char file[64], text[64];
    snprintf(file, sizeof(file), "%s.ns", name);
    read_in(text, sizeof(text), dir, file);
    return text[0] != '\0' ? strtoll(text, NULL, 10) : -1;
}

static bool hook_ran(const char *dir, const char *name)
{
    return ns_in(dir, name) >= 0;
}

static int64_t mtime_ns(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -1;
    return (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
}

/* The environment and user of one hook run of backup `id`. */
static void check_hook_env(const char *dir, const char *name, const char *id, const char *status,
                           const char *loc)
{
    char path[64], text[16384], user[64], want[64];
    assert_env(dir, name, "REEVE_BACKUP_ID", id);
    assert_env(dir, name, "REEVE_CLUSTER", "t/db");
    assert_env(dir, name, "REEVE_NODE", "bk-0");
    assert_env(dir, name, "REEVE_STATUS", status);
    assert_env(dir, name, "REEVE_LOCATION", loc);
    assert_env(dir, name, "LC_ALL", "C");
    assert_env(dir, name, "HOME", "/");
    /* ... run as the server's OS user ... */
    snprintf(path, sizeof(path), "%s.user", name);
    read_in(user, sizeof(user), dir, path);
    snprintf(want, sizeof(want), "%s\n", tu_pg_os_user() != NULL ? tu_pg_os_user() : "");
    if (tu_pg_os_user() != NULL)
        assert_string_equal(user, want);
    /* ... with nothing secret. */
    snprintf(path, sizeof(path), "%s.env", name);
    read_in(text, sizeof(text), dir, path);
    assert_null(strstr(text, "PGPASSWORD"));
    assert_null(strstr(text, KEY_HEX));
    assert_null(strstr(text, "REEVE_TEST_REPL_PW"));
}

/* Success: pre, the backup, post, then the success notification. */
static void hooks_success(struct fixture *f, const char *dir)
{
    struct backup_ctx c;
    struct rv_error err = {0};
    json_t *rec = NULL;
    char seq[256], path[256], loc[256];
    store_config_with(f, "h1", "pg_basebackup", hooks_json(dir, ""));
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    if (backup_role_ensure(&c, true, &err) != 0)
        fail_msg("role: %s", err.msg);
    if (backup_full(&rec, &c, "manual", &err) != 0)
        fail_msg("backup with hooks: %s", err.msg);
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "succeeded");
    read_in(seq, sizeof(seq), dir, "seq");
    assert_string_equal(seq, "pre\npost\nok\n");
    snprintf(loc, sizeof(loc), "file://%s/base/%s/data", f->store, id);
    check_hook_env(dir, "pre", id, "running", loc);
    check_hook_env(dir, "post", id, "succeeded", loc);
    check_hook_env(dir, "ok", id, "succeeded", loc);
    assert_env(dir, "ok", "REEVE_ERROR", "");
    /* The pre script ran before the data was written, the post script
     * after the manifest (file times lag the clock by a tick at most). */
    snprintf(path, sizeof(path), "%s/base/%s/data", f->store, id);
    int64_t data_ns = mtime_ns(path);
    snprintf(path, sizeof(path), "%s/base/%s/manifest.json", f->store, id);
    int64_t manifest_ns = mtime_ns(path);
    int64_t pre_ns = ns_in(dir, "pre"), post_ns = ns_in(dir, "post");
    assert_true(data_ns > 0 && manifest_ns > 0 && pre_ns > 0);
    if (!(pre_ns < data_ns))
        fail_msg("pre script at %lld ns, data written at %lld ns", (long long)pre_ns,
                 (long long)data_ns);
    if (!(manifest_ns <= post_ns))
        fail_msg("post script at %lld ns, manifest written at %lld ns", (long long)post_ns,
                 (long long)manifest_ns);
    assert_false(hook_ran(dir, "failed"));
    json_decref(rec);
    backup_ctx_release(&c);
}

/* A failing backup (the external tool exits 1): the failure notification
 * with the error; no post script, no success notification. */
static void hooks_backup_fails(struct fixture *f, const char *dir)
{
    struct backup_ctx c;
    struct rv_error err = {0};
    json_t *rec = NULL;
    char seq[256];
    json_t *x = hooks_json(dir, "");
    json_object_set_new(x, "args", json_pack("[s,s]", "-c", "echo tool-broke >&2; exit 1"));
    store_config_with(f, "h2", "external", x);
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    assert_int_equal(backup_full(&rec, &c, "manual", &err), RV_ECHILD);
    assert_string_equal(err.msg, "external failed (exit 1): tool-broke");
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "failed");
    read_in(seq, sizeof(seq), dir, "seq");
    assert_string_equal(seq, "pre\nfailed\n");
    check_hook_env(dir, "failed", id, "failed",
                   json_string_value(json_object_get(rec, "location")));
    assert_env(dir, "failed", "REEVE_ERROR", err.msg);
    assert_false(hook_ran(dir, "ok"));
    assert_false(hook_ran(dir, "post"));
    json_decref(rec);
    backup_ctx_release(&c);
}

/* A pre script that exits non-zero fails the backup before it starts: a
 * plain message, nothing written, the failure notification. */
static void hooks_pre_fails(struct fixture *f, const char *dir)
{
    struct backup_ctx c;
    struct rv_error err = {0}, e2 = {0};
    json_t *rec = NULL, *stored = NULL;
    char seq[256], key[96];
    int64_t size = 0;
    store_config_with(f, "h3", "pg_basebackup",
                      hooks_json(dir, "; echo 'volume not mounted' >&2; exit 3"));
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    assert_int_equal(backup_full(&rec, &c, "manual", &err), RV_ECHILD);
    assert_string_equal(err.msg, "pre script failed (exit 3): volume not mounted");
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(rec, "error")), err.msg);
    assert_int_equal(backup_db_record_get(&stored, c.db, id, &e2), 0);
    assert_string_equal(json_string_value(json_object_get(stored, "status")), "failed");
    json_decref(stored);
    snprintf(key, sizeof(key), "base/%s/data", id);
    assert_int_equal(c.store->stat(c.store, key, &size, &e2), RV_ENOTFOUND);
    snprintf(key, sizeof(key), "base/%s/manifest.json", id);
    assert_int_equal(c.store->stat(c.store, key, &size, &e2), RV_ENOTFOUND);
    read_in(seq, sizeof(seq), dir, "seq");
    assert_string_equal(seq, "pre\nfailed\n");
    check_hook_env(dir, "failed", id, "failed",
                   json_string_value(json_object_get(rec, "location")));
    assert_env(dir, "failed", "REEVE_ERROR", err.msg);
    json_decref(rec);
    backup_ctx_release(&c);
}

static void test_hooks(void **state)
{
    struct fixture *f = *state;
    char dir[160];
    TU_SKIP_WITHOUT_PG();
    f->dest[0] = '\0'; /* the local store, whatever an earlier test left */
    /* The hooks run as the server's OS user: their directory is its. */
    snprintf(dir, sizeof(dir), "%s/hooks", f->base);
    mkdir(dir, 0700);
    if (tu_pg_os_user() != NULL)
        assert_int_equal(tu_chown(dir, tu_pg_os_user()), 0);
    hooks_success(f, dir);
    hooks_reset(dir);
    hooks_backup_fails(f, dir);
    hooks_reset(dir);
    hooks_pre_fails(f, dir);
    store_config(f, "h4", "pg_basebackup"); /* no hooks for what follows */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_db),      cmocka_unit_test(test_full_backup),
        cmocka_unit_test(test_wal_roundtrip),  cmocka_unit_test(test_kill_mid_upload),
        cmocka_unit_test(test_scheduler),      cmocka_unit_test(test_prefer_replica),
        cmocka_unit_test(test_s3_destination), cmocka_unit_test(test_hooks),
    };
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
