/* test_users_pg.c - agent/users.c against a real PostgreSQL 15 server.
 *
 * One primary on 127.0.10.9 under /tmp/reeve-users-test-XXXXXX (run as the
 * postgres user when the test runs as root), with log_statement = 'all'.
 * The tests run in order on it: users are created (logins work with their
 * passwords, roles are marked), a password is changed (the new one logs
 * in, the old one no longer does; applying again changes nothing), the
 * role mapping is effective (readonly cannot INSERT, readwrite can, admin
 * has CREATEDB but not SUPERUSER), a removed user is dropped and one that
 * owns a table is made NOLOGIN and kept with a note, a role reeve did not
 * create is neither taken over nor dropped, and the server log holds none
 * of the clear passwords. Last, users_sync (the backup thread's call) with
 * an in-process reconciler (tests/agent/recon.c): it applies a new set once,
 * reports it in the DCS key users-applied, and reports a refusal as a
 * permanent error.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>

#include "backup_db.h"
#include "config.h"
#include "dcs_client.h"
#include "engine_pg.h"
#include "testutil_pg.h"
#include "recon.h"
#include "users.h"

#define ADDR "127.0.10.9"
#define PW_APP "app-first-Pa55word"
#define PW_APP2 "app-second-Pa55word'\"\\"
#define PW_READER "reader-Pa55word"
#define PW_BOSS "boss-Pa55word"
#define PW_OWNER "owner-Pa55word"

struct fixture {
    char base[64];
    char data[128], sock[128], log[128];
    int port;
    struct pg_engine e;
    bool inited, started;
    struct users_pg_target t;
};

/* Run q as the superuser; the first value (or "") into out. */
static bool sql(const struct fixture *f, const char *q, char *out, size_t cap)
{
    return tu_pg_query(f->sock, f->port, TU_PG_SUPERUSER, "users-0", q, out, cap);
}

static void sql_ok(const struct fixture *f, const char *q)
{
    if (!sql(f, q, NULL, 0))
        fail_msg("query failed: %s", q);
}

static void sql_is(const struct fixture *f, const char *q, const char *want)
{
    char got[256] = "";
    if (!sql(f, q, got, sizeof got))
        fail_msg("query failed: %s", q);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got '%s', wanted '%s'", q, got, want);
}

/* Log in over TCP as user; NULL when the login fails. */
static PGconn *login(const struct fixture *f, const char *user, const char *password)
{
    char port[16];
    snprintf(port, sizeof port, "%d", f->port);
    const char *const k[] = {"host", "port", "user", "password", "dbname", "connect_timeout", NULL};
    const char *const v[] = {ADDR, port, user, password, "postgres", "5", NULL};
    PGconn *c = PQconnectdbParams(k, v, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static bool can_login(const struct fixture *f, const char *user, const char *password)
{
    PGconn *c = login(f, user, password);
    PQfinish(c);
    return c != NULL;
}

/* Run q as user; the SQLSTATE of a failure ("" on success) into state. */
static void as_user(const struct fixture *f, const char *user, const char *password, const char *q,
                    char state[6])
{
    PGconn *c = login(f, user, password);
    if (c == NULL)
        fail_msg("%s cannot log in", user);
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(state, 6, "%s",
             st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? ""
             : code                                          ? code
                                                             : "?");
    PQclear(r);
    PQfinish(c);
}

static int setup(void **state)
{
    static struct fixture f;
    struct rv_error err = {0};
    memset(&f, 0, sizeof f);
    *state = &f;
    if (!tu_have_pg())
        return 0;
    if (tu_tmpdir(f.base, sizeof f.base, "reeve-users-test", "postgres", 0700) != 0)
        return -1;
    f.port = tu_port(7919);
    snprintf(f.data, sizeof f.data, "%s/data", f.base);
    snprintf(f.sock, sizeof f.sock, "%s/sock", f.base);
    snprintf(f.log, sizeof f.log, "%s/server.log", f.base);
    static const struct pg_param extra[] = {{"log_statement", "all"}};
    struct pg_engine_config cfg = {
        .bin_dir = TU_PG_BIN,
        .data_dir = f.data,
        .socket_dir = f.sock,
        .log_file = f.log,
        .listen_address = ADDR,
        .port = f.port,
        .superuser = "reeve",
        .replication_user = "replicator",
        .replication_password = "repl-secret",
        .application_name = "users-0",
        .os_user = tu_pg_os_user(),
        .extra = extra,
        .n_extra = 1,
        .no_sync = true,
    };
    if (pg_engine_init(&f.e, &cfg, &err) != 0) {
        fprintf(stderr, "init: %s\n", err.msg);
        return -1;
    }
    f.inited = true;
    if (pg_engine_initdb(&f.e, &err) != 0) {
        fprintf(stderr, "initdb: %s\n", err.msg);
        return -1;
    }
    f.started = true;
    f.t = (struct users_pg_target){.socket_dir = f.sock,
                                   .port = f.port,
                                   .superuser = "reeve",
                                   .replication_user = "replicator"};
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->inited) {
        struct rv_error err = {0};
        if (f->started && pg_engine_stop(&f->e, PG_STOP_IMMEDIATE, &err) != 0)
            fprintf(stderr, "teardown: %s\n", err.msg);
        pg_engine_release(&f->e);
    }
    tu_rm_test_dir(f->base);
    return 0;
}

/* [{"name","roles":[role],"password"}...] from name, role, password triples. */
static json_t *users_of(int n, ...)
{
    va_list ap;
    json_t *arr = json_array();
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *name = va_arg(ap, const char *);
        const char *role = va_arg(ap, const char *);
        const char *pw = va_arg(ap, const char *);
        json_array_append_new(arr, json_pack("{s:s, s:[s], s:s, s:s}", "name", name, "roles", role,
                                             "password", pw, "digest", "-"));
    }
    va_end(ap);
    return arr;
}

static int apply(struct fixture *f, json_t *users, struct users_result *res, struct rv_error *err)
{
    int rc = users_apply_pg(res, &f->t, users, err);
    json_decref(users);
    return rc;
}

static void test_create(void **state)
{
    struct fixture *f = *state;
    struct users_result res;
    struct rv_error err = {0};
    TU_SKIP_WITHOUT_PG();
    sql_ok(f, "CREATE TABLE accounts (id int)");
    sql_ok(f, "INSERT INTO accounts VALUES (1)");
    int rc = apply(f,
                   users_of(3, "app", "readwrite", PW_APP, "reader", "readonly", PW_READER, "boss",
                            "admin", PW_BOSS),
                   &res, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_int_equal(res.created, 3);
    assert_true(can_login(f, "app", PW_APP));
    assert_true(can_login(f, "reader", PW_READER));
    assert_false(can_login(f, "reader", PW_APP));
    sql_is(f, "SELECT shobj_description(oid, 'pg_authid') FROM pg_authid WHERE rolname = 'app'",
           "managed by reeve");
    /* the stored password is a SCRAM verifier of the clear one */
    char verifier[512];
    assert_true(sql(f, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'", verifier,
                    sizeof verifier));
    assert_true(users_scram_matches(verifier, PW_APP));
    assert_false(users_scram_matches(verifier, PW_READER));
    assert_false(users_scram_matches("md5abc", PW_APP));
}

static void test_roles_effective(void **state)
{
    struct fixture *f = *state;
    char st[6];
    TU_SKIP_WITHOUT_PG();
    as_user(f, "reader", PW_READER, "SELECT count(*) FROM accounts", st);
    assert_string_equal(st, "");
    as_user(f, "reader", PW_READER, "INSERT INTO accounts VALUES (2)", st);
    assert_string_equal(st, "42501"); /* insufficient_privilege */
    as_user(f, "app", PW_APP, "INSERT INTO accounts VALUES (3)", st);
    assert_string_equal(st, "");
    as_user(f, "app", PW_APP, "CREATE DATABASE appdb", st);
    assert_string_equal(st, "42501");
    as_user(f, "boss", PW_BOSS, "CREATE DATABASE bossdb", st);
    assert_string_equal(st, "");
    sql_ok(f, "DROP DATABASE bossdb"); /* so that boss can be dropped later */
    sql_is(f, "SELECT rolsuper::text FROM pg_roles WHERE rolname = 'boss'", "false");
    sql_is(f, "SELECT count(*) FROM accounts", "2");
}

static void test_alter_password_and_roles(void **state)
{
    struct fixture *f = *state;
    struct users_result res;
    struct rv_error err = {0};
    char st[6];
    TU_SKIP_WITHOUT_PG();
    /* app gets a new password, reader becomes readwrite */
    int rc = apply(f,
                   users_of(3, "app", "readwrite", PW_APP2, "reader", "readwrite", PW_READER,
                            "boss", "admin", PW_BOSS),
                   &res, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_int_equal(res.created, 0);
    assert_int_equal(res.altered, 2);
    assert_int_equal(res.unchanged, 1);
    assert_true(can_login(f, "app", PW_APP2));
    assert_false(can_login(f, "app", PW_APP));
    as_user(f, "reader", PW_READER, "INSERT INTO accounts VALUES (4)", st);
    assert_string_equal(st, "");
    /* the same set again: nothing to change (verifiers checked, not reset) */
    rc = apply(f,
               users_of(3, "app", "readwrite", PW_APP2, "reader", "readwrite", PW_READER, "boss",
                        "admin", PW_BOSS),
               &res, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(res.altered, 0);
    assert_int_equal(res.unchanged, 3);
    /* and back to readonly: the write role is revoked */
    rc = apply(f,
               users_of(3, "app", "readwrite", PW_APP2, "reader", "readonly", PW_READER, "boss",
                        "admin", PW_BOSS),
               &res, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(res.altered, 1);
    as_user(f, "reader", PW_READER, "INSERT INTO accounts VALUES (5)", st);
    assert_string_equal(st, "42501");
}

static void test_foreign_role_left_alone(void **state)
{
    struct fixture *f = *state;
    struct users_result res;
    struct rv_error err = {0};
    TU_SKIP_WITHOUT_PG();
    sql_ok(f, "CREATE ROLE legacy LOGIN PASSWORD 'legacy-pw'");
    /* listing it: refused, the others still applied */
    int rc = apply(f,
                   users_of(4, "app", "readwrite", PW_APP2, "reader", "readonly", PW_READER, "boss",
                            "admin", PW_BOSS, "legacy", "readonly", "taken-over"),
                   &res, &err);
    assert_int_equal(rc, RV_EINVAL);
    assert_false(err.retryable);
    assert_string_equal(err.msg, "role 'legacy' exists and was not created by reeve; reeve does "
                                 "not take over roles it did not create: drop or rename it, or "
                                 "choose another user name");
    assert_int_equal(res.unchanged, 3);
    assert_true(can_login(f, "legacy", "legacy-pw"));
    assert_false(can_login(f, "legacy", "taken-over"));
    /* reserved names are refused */
    rc = apply(f, users_of(1, "replicator", "readonly", "x-pw"), &res, &err);
    assert_int_equal(rc, RV_EINVAL);
    assert_non_null(strstr(err.msg, "reserved"));
    /* that apply listed only replicator: app, reader and boss were dropped */
    sql_is(f, "SELECT count(*) FROM pg_roles WHERE rolname IN ('app', 'reader', 'boss')", "0");
    /* not listed, not reeve's: never dropped */
    sql_is(f, "SELECT count(*) FROM pg_roles WHERE rolname = 'legacy'", "1");
    sql_is(f, "SELECT count(*) FROM pg_roles WHERE rolname = 'replicator'", "1");
}

static void test_drop(void **state)
{
    struct fixture *f = *state;
    struct users_result res;
    struct rv_error err = {0};
    TU_SKIP_WITHOUT_PG();
    int rc = apply(f,
                   users_of(3, "app", "readwrite", PW_APP, "reader", "readonly", PW_READER,
                            "owner_u", "readwrite", PW_OWNER),
                   &res, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_int_equal(res.created, 3);
    sql_ok(f, "CREATE TABLE owned (x int)");
    sql_ok(f, "ALTER TABLE owned OWNER TO owner_u");
    /* reader and owner_u removed from the spec */
    rc = apply(f, users_of(1, "app", "readwrite", PW_APP), &res, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_int_equal(res.dropped, 1);
    assert_int_equal(res.kept, 1);
    sql_is(f, "SELECT count(*) FROM pg_roles WHERE rolname = 'reader'", "0");
    sql_is(f, "SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'owner_u'", "false");
    sql_is(f, "SELECT tableowner FROM pg_tables WHERE tablename = 'owned'", "owner_u");
    assert_false(can_login(f, "owner_u", PW_OWNER));
    assert_int_equal(res.nnotes, 1);
    assert_non_null(strstr(res.notes[0], "user 'owner_u' is no longer in the spec but owns "
                                         "objects or holds privileges, so it was made NOLOGIN "
                                         "and kept"));
    sql_is(f, "SELECT count(*) FROM pg_roles WHERE rolname = 'legacy'", "1");
}

/* The whole server log. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;
    *len = 0;
    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf != NULL)
        *len = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    return buf;
}

static void test_no_password_in_server_log(void **state)
{
    struct fixture *f = *state;
    static const char *const pws[] = {PW_APP, PW_APP2, PW_READER, PW_BOSS, PW_OWNER, "taken-over"};
    size_t len = 0;
    TU_SKIP_WITHOUT_PG();
    sql_is(f, "SHOW log_statement", "all");
    char *log = slurp(f->log, &len);
    assert_non_null(log);
    /* the statements were logged: with their verifiers, never a password */
    assert_non_null(memmem(log, len, "CREATE ROLE \"app\"", 17));
    assert_non_null(memmem(log, len, "SCRAM-SHA-256$", 14));
    for (size_t i = 0; i < sizeof pws / sizeof pws[0]; i++)
        if (memmem(log, len, pws[i], strlen(pws[i])) != NULL)
            fail_msg("the server log holds the password '%s'", pws[i]);
    free(log);
}

/* --- users_sync against an in-process reconciler --- */

struct sync_fx {
    struct fixture *f;
    struct recon r;
    char tok[1][AGENTAPI_TOKEN_HEX_SIZE];
    char failure[1024];
};

#define DIGEST_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIGEST_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

#define SYNC_FAIL(...)                                                                             \
    do {                                                                                           \
        snprintf(x->failure, sizeof x->failure, __VA_ARGS__);                                      \
        goto out;                                                                                  \
    } while (0)

/* The users-applied report in the DCS (a new reference), or NULL. */
static json_t *report(struct dcs_client *c)
{
    struct rv_error err = {0};
    json_t *kv = NULL;
    if (dcs_client_get(&kv, NULL, c, "/clusters/test/pg/users-applied", &err) != 0 || kv == NULL)
        return NULL;
    json_t *v = json_incref(json_object_get(kv, "value"));
    json_decref(kv);
    return v;
}

static void sync_scenario(struct sync_fx *x)
{
    struct fixture *f = x->f;
    struct rv_error err = {0};
    struct dcs_client http;
    struct backup_db *db = NULL;
    json_t *cfg = NULL, *rep = NULL;
    char dir[128];
    bool http_inited = false;
    struct agent_config ac;
    memset(&ac, 0, sizeof ac);
    ac.node = (char *)"users-0";
    ac.namespace_ = (char *)"test";
    ac.cluster = (char *)"pg";
    ac.pg.socket_dir = f->sock;
    ac.pg.port = f->port;
    ac.pg.superuser = (char *)"reeve";
    ac.pg.replication_user = (char *)"replicator";
    snprintf(dir, sizeof dir, "%s/agent-state", f->base);
    if (dcs_client_init(&http, "http://127.0.0.1:1", 5000, &err) != 0)
        SYNC_FAIL("client: %s", err.msg);
    http_inited = true;
    snprintf(http.url, sizeof http.url, "http://127.0.0.1:%u", (unsigned)x->r.port);
    if (dcs_client_register(&http, x->tok[0], "test/pg", "users-0", ADDR ":1", &err) != 0)
        SYNC_FAIL("register: %s", err.msg);
    if (backup_db_open(&db, dir, true, (uid_t)-1, (gid_t)-1, &err) != 0)
        SYNC_FAIL("backup.db: %s", err.msg);

    /* a new set: applied and reported */
    cfg = json_pack("{s:s, s:o, s:s}", "engine", "postgresql", "users",
                    users_of(1, "synced", "readonly", "synced-Pa55"), "users_digest", DIGEST_A);
    users_sync(&ac, db, cfg, &http);
    rep = report(&http);
    if (rep == NULL)
        SYNC_FAIL("no users-applied report after the first sync");
    if (strcmp(json_string_value(json_object_get(rep, "digest")), DIGEST_A) != 0 ||
        strcmp(json_string_value(json_object_get(rep, "node")), "users-0") != 0 ||
        !json_is_null(json_object_get(rep, "error")) ||
        json_integer_value(json_object_get(rep, "created")) != 1)
        SYNC_FAIL("unexpected report: %s", json_dumps(rep, JSON_COMPACT));
    json_decref(rep);
    rep = NULL;
    if (!can_login(f, "synced", "synced-Pa55"))
        SYNC_FAIL("the synced user cannot log in");

    /* the same digest again: not applied again (a role dropped by hand
     * stays dropped until the set changes) */
    sql_ok(f, "DROP ROLE synced");
    users_sync(&ac, db, cfg, &http);
    char n[16] = "";
    sql(f, "SELECT count(*) FROM pg_roles WHERE rolname = 'synced'", n, sizeof n);
    if (strcmp(n, "0") != 0)
        SYNC_FAIL("the same digest was applied again");
    json_decref(cfg);

    /* a set with a role reeve did not create: a permanent error, reported */
    cfg = json_pack("{s:s, s:o, s:s}", "engine", "postgresql", "users",
                    users_of(2, "synced", "readonly", "synced-Pa55", "legacy", "readonly", "x-pw"),
                    "users_digest", DIGEST_B);
    users_sync(&ac, db, cfg, &http);
    rep = report(&http);
    const char *e = rep != NULL ? json_string_value(json_object_get(rep, "error")) : NULL;
    if (e == NULL || strstr(e, "role 'legacy' exists and was not created by reeve") == NULL ||
        json_is_true(json_object_get(rep, "retryable")) ||
        strcmp(json_string_value(json_object_get(rep, "digest")), DIGEST_B) != 0)
        SYNC_FAIL("unexpected report: %s", rep ? json_dumps(rep, JSON_COMPACT) : "none");
    if (!can_login(f, "synced", "synced-Pa55"))
        SYNC_FAIL("the other user of the set was not applied");
out:
    json_decref(rep);
    json_decref(cfg);
    backup_db_free(db);
    if (http_inited)
        dcs_client_release(&http);
    uv_async_send(&x->r.stop);
}

static void *sync_main(void *arg)
{
    sync_scenario(arg);
    return NULL;
}

static void test_sync_reports(void **state)
{
    static struct sync_fx x;
    struct rv_error err = {0};
    pthread_t th;
    static const char *const nodes[] = {"users-0"};
    TU_SKIP_WITHOUT_PG();
    memset(&x, 0, sizeof x);
    x.f = *state;
    if (recon_start(&x.r, x.tok, "test", "pg", nodes, 1, &err) != 0)
        fail_msg("reconciler: %s", err.msg);
    assert_int_equal(pthread_create(&th, NULL, sync_main, &x), 0);
    recon_run_and_free(&x.r);
    pthread_join(th, NULL);
    if (x.failure[0] != '\0')
        fail_msg("%s", x.failure);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_roles_effective),
        cmocka_unit_test(test_alter_password_and_roles),
        cmocka_unit_test(test_foreign_role_left_alone),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_no_password_in_server_log),
        cmocka_unit_test(test_sync_reports),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
