/* test_users.c - database users on the reconciler (reconciler/users.c):
 * the agent configuration's users from specs with sealed:, env: and file:
 * password references, their digests, refusals that name the reference but
 * never the value (a sealed value of another cluster, an unset variable,
 * an empty file), the same through backups_agent_config on a real state.db
 * (which never holds a password), the agent's users-applied report, and
 * the configure_users runner waiting on that report. */
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
#include <jansson.h>

#include "backups.h"
#include "config.h"
#include "db.h"
#include "diag.h"
#include "err.h"
#include "journal.h"
#include "runners.h"
#include "seal.h"
#include "spec.h"
#include "store.h"
#include "users.h"
#include "tutil.h"

#define PW_SEALED "Sealed-pa55:word'\"\\x"
#define PW_ENV "env-password-3141"
#define PW_FILE "file-password-2718"

struct fx {
    char dir[64];
    char db_path[128];
    char pw_file[128];
    struct seal_keys keys;
    char *sealed;       /* PW_SEALED sealed for payments/billing */
    char *sealed_other; /* the same sealed for payments/ledger */
    struct config cfg;
    struct backups *b;
};

static const char spec_fmt[] = "apiVersion: reeve/v1\n"
                               "kind: DatabaseCluster\n"
                               "metadata:\n"
                               "  name: billing\n"
                               "  namespace: payments\n"
                               "spec:\n"
                               "  engine: postgresql\n"
                               "  version: \"16\"\n"
                               "  provider: local\n"
                               "  users:\n"
                               "    - name: zeta_reader\n"
                               "      roles: [readonly]\n"
                               "      passwordRef: \"%s\"\n"
                               "    - name: app\n"
                               "      roles: [readwrite]\n"
                               "      passwordRef: \"env:RV_T_USERS_PW\"\n"
                               "    - name: ops\n"
                               "      roles: [admin, replication]\n"
                               "      passwordRef: \"file:%s\"\n";

static void load_spec(struct spec_set *set, const struct fx *f, const char *sealed)
{
    char text[32768];
    snprintf(text, sizeof(text), spec_fmt, sealed, f->pw_file);
    spec_set_init(set);
    tu_add_cluster(set, "clusters/billing.yaml", text);
    assert_int_equal(set->nclusters, 1);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rv_error err = {0};
    struct db *db = NULL;
    struct diag_list d;
    static const char yaml[] = "dataDir: /var/lib/reeve\nrepository:\n  url: /srv/specs.git\n";
    snprintf(f->dir, sizeof(f->dir), "/tmp/rv-users-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(seal_keys_load_or_create(&f->keys, f->dir, &err), 0);
    assert_int_equal(
        seal_encrypt(&f->sealed, &f->keys, "payments/billing", PW_SEALED, strlen(PW_SEALED), &err),
        0);
    assert_int_equal(seal_encrypt(&f->sealed_other, &f->keys, "payments/ledger", PW_SEALED,
                                  strlen(PW_SEALED), &err),
                     0);
    snprintf(f->pw_file, sizeof(f->pw_file), "%s/ops.pw", f->dir);
    write_file(f->pw_file, PW_FILE "\n");
    setenv("RV_T_USERS_PW", PW_ENV, 1);
    snprintf(f->db_path, sizeof(f->db_path), "%s/state.db", f->dir);
    assert_int_equal(store_open(&db, f->db_path, NULL, &err), 0);
    db_free(db);
    config_init(&f->cfg);
    diag_list_init(&d);
    assert_int_equal(config_parse(&f->cfg, "/etc/reeve/reeve.yaml", yaml, strlen(yaml), &d, &err),
                     0);
    diag_list_release(&d);
    assert_int_equal(backups_open(&f->b, f->db_path, &f->cfg, &err), 0);
    backups_set_seal_keys(f->b, &f->keys);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    backups_free(f->b);
    config_release(&f->cfg);
    seal_keys_wipe(&f->keys);
    free(f->sealed);
    free(f->sealed_other);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

/* The configuration users of the spec with sealed as zeta_reader's ref. */
static int config_of(json_t **users, char digest[CRYPTO_SHA256_HEX_SIZE], struct fx *f,
                     const char *sealed, const struct seal_keys *keys, struct rv_error *err)
{
    struct spec_set set;
    load_spec(&set, f, sealed);
    json_t *row = users_row_json(set.clusters[0]);
    assert_non_null(row);
    int rc = users_config_json(users, digest, row, "payments/billing", keys, err);
    json_decref(row);
    spec_set_release(&set);
    return rc;
}

static const json_t *user_named(const json_t *users, const char *name)
{
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
    {
        if (strcmp(json_string_value(json_object_get(u, "name")), name) == 0)
            return u;
    }
    return NULL;
}

static void test_row_holds_references_only(void **state)
{
    struct fx *f = *state;
    struct spec_set set;
    load_spec(&set, f, f->sealed);
    json_t *row = users_row_json(set.clusters[0]);
    char *text = json_dumps(row, JSON_COMPACT);
    assert_non_null(strstr(text, "env:RV_T_USERS_PW"));
    assert_non_null(strstr(text, f->sealed));
    assert_null(strstr(text, PW_ENV));
    assert_null(strstr(text, PW_FILE));
    free(text);
    json_decref(row);
    spec_set_release(&set);
}

static void test_config_users_and_digests(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    json_t *users = NULL;
    char digest[CRYPTO_SHA256_HEX_SIZE], again[CRYPTO_SHA256_HEX_SIZE];

    assert_int_equal(config_of(&users, digest, f, f->sealed, &f->keys, &err), 0);
    assert_int_equal(json_array_size(users), 3);
    /* sorted by name, every reference opened */
    assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "name")),
                        "app");
    assert_string_equal(json_string_value(json_object_get(json_array_get(users, 2), "name")),
                        "zeta_reader");
    assert_string_equal(json_string_value(json_object_get(user_named(users, "app"), "password")),
                        PW_ENV);
    assert_string_equal(json_string_value(json_object_get(user_named(users, "ops"), "password")),
                        PW_FILE);
    assert_string_equal(
        json_string_value(json_object_get(user_named(users, "zeta_reader"), "password")),
        PW_SEALED);
    const json_t *ops_roles = json_object_get(user_named(users, "ops"), "roles");
    assert_int_equal(json_array_size(ops_roles), 2);
    assert_string_equal(json_string_value(json_array_get(ops_roles, 0)), "admin");
    assert_int_equal(strlen(digest), 64);
    const char *d_app = json_string_value(json_object_get(user_named(users, "app"), "digest"));
    const char *d_ops = json_string_value(json_object_get(user_named(users, "ops"), "digest"));
    assert_int_equal(strlen(d_app), 64);
    assert_string_not_equal(d_app, d_ops);
    char app_digest[CRYPTO_SHA256_HEX_SIZE], ops_digest[CRYPTO_SHA256_HEX_SIZE];
    snprintf(app_digest, sizeof(app_digest), "%s", d_app);
    snprintf(ops_digest, sizeof(ops_digest), "%s", d_ops);
    users_json_free(users);

    /* the same inputs give the same digests */
    assert_int_equal(config_of(&users, again, f, f->sealed, &f->keys, &err), 0);
    assert_string_equal(digest, again);
    users_json_free(users);

    /* a new password (same reference) is a new digest for that user only */
    setenv("RV_T_USERS_PW", PW_ENV "-rotated", 1);
    assert_int_equal(config_of(&users, again, f, f->sealed, &f->keys, &err), 0);
    assert_string_not_equal(digest, again);
    assert_string_not_equal(json_string_value(json_object_get(user_named(users, "app"), "digest")),
                            app_digest);
    assert_string_equal(json_string_value(json_object_get(user_named(users, "ops"), "digest")),
                        ops_digest);
    users_json_free(users);
    setenv("RV_T_USERS_PW", PW_ENV, 1);

    /* another reconciler's key: other digests for the same users (a digest
     * is no offline oracle for the password) */
    struct seal_keys other;
    char other_dir[96];
    snprintf(other_dir, sizeof(other_dir), "%s/other", f->dir);
    assert_int_equal(mkdir(other_dir, 0700), 0);
    assert_int_equal(seal_keys_load_or_create(&other, other_dir, &err), 0);
    json_t *row = json_pack("[{s:s, s:[s], s:s}]", "name", "app", "roles", "readwrite",
                            "password_ref", "env:RV_T_USERS_PW");
    assert_int_equal(users_config_json(&users, again, row, "payments/billing", &other, &err), 0);
    assert_string_not_equal(json_string_value(json_object_get(json_array_get(users, 0), "digest")),
                            app_digest);
    users_json_free(users);
    /* a role change is a new digest */
    char d1[CRYPTO_SHA256_HEX_SIZE], d2[CRYPTO_SHA256_HEX_SIZE];
    assert_int_equal(users_config_json(&users, d1, row, "payments/billing", &f->keys, &err), 0);
    users_json_free(users);
    json_array_set_new(json_object_get(json_array_get(row, 0), "roles"), 0,
                       json_string("readonly"));
    assert_int_equal(users_config_json(&users, d2, row, "payments/billing", &f->keys, &err), 0);
    users_json_free(users);
    assert_string_not_equal(d1, d2);
    json_decref(row);
    seal_keys_wipe(&other);

    /* the empty set has a fixed digest, without any key */
    json_t *none = json_array();
    assert_int_equal(users_config_json(&users, d1, none, "payments/billing", NULL, &err), 0);
    assert_int_equal(json_array_size(users), 0);
    users_json_free(users);
    assert_int_equal(users_config_json(&users, d2, NULL, "payments/ledger", &f->keys, &err), 0);
    users_json_free(users);
    assert_string_equal(d1, d2);
    assert_string_not_equal(d1, digest);
    json_decref(none);
}

static void test_refusals_never_show_the_value(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    json_t *users = NULL;
    char digest[CRYPTO_SHA256_HEX_SIZE];

    /* sealed for another cluster */
    assert_int_equal(config_of(&users, digest, f, f->sealed_other, &f->keys, &err), RV_EINVAL);
    assert_null(users);
    assert_string_equal(err.msg,
                        "the password of user 'zeta_reader' of payments/billing: the sealed value "
                        "does not open for payments/billing: it was sealed for another cluster or "
                        "another reconciler's key, or was modified; seal it again with reeve seal "
                        "--cluster payments/billing");
    assert_null(strstr(err.msg, PW_SEALED));
    assert_null(strstr(err.msg, f->sealed_other + 7));

    /* no key pair loaded: sealed values cannot open, and users need it */
    memset(&err, 0, sizeof(err));
    assert_int_equal(config_of(&users, digest, f, f->sealed, NULL, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "seal key pair is not loaded"));

    /* an unset variable */
    memset(&err, 0, sizeof(err));
    unsetenv("RV_T_USERS_PW");
    assert_int_equal(config_of(&users, digest, f, f->sealed, &f->keys, &err), RV_EINVAL);
    assert_string_equal(err.msg, "the password of user 'app' of payments/billing: environment "
                                 "variable 'RV_T_USERS_PW' of reeve serve is not set; set it and "
                                 "restart reeve serve, or seal the password with reeve seal");
    setenv("RV_T_USERS_PW", PW_ENV, 1);

    /* an empty file */
    memset(&err, 0, sizeof(err));
    write_file(f->pw_file, "\n");
    assert_int_equal(config_of(&users, digest, f, f->sealed, &f->keys, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "user 'ops'"));
    assert_non_null(strstr(err.msg, "is empty"));
    write_file(f->pw_file, PW_FILE "\n");

    /* a password longer than an agent keeps */
    char *big = malloc(RV_USERS_PASSWORD_MAX + 2), *sealed_big = NULL;
    memset(big, 'p', RV_USERS_PASSWORD_MAX + 1);
    big[RV_USERS_PASSWORD_MAX + 1] = '\0';
    assert_int_equal(
        seal_encrypt(&sealed_big, &f->keys, "payments/billing", big, strlen(big), &err), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(config_of(&users, digest, f, sealed_big, &f->keys, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "the password is longer than 4096 bytes"));
    free(sealed_big);
    free(big);

    /* a modified sealed value */
    char *bad = strdup(f->sealed);
    size_t n = strlen(bad);
    bad[n - 3] = bad[n - 3] == 'A' ? 'B' : 'A';
    memset(&err, 0, sizeof(err));
    assert_int_equal(config_of(&users, digest, f, bad, &f->keys, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "does not open"));
    free(bad);
}

/* The whole file, for looking for a password in it. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    *len = 0;
    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    return buf;
}

static bool contains(const char *buf, size_t len, const char *needle)
{
    return memmem(buf, len, needle, strlen(needle)) != NULL;
}

static void test_agent_config_route(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    struct spec_set set;
    char *text = NULL, digest[CRYPTO_SHA256_HEX_SIZE];
    size_t n = 0;

    load_spec(&set, f, f->sealed);
    assert_int_equal(backups_set_specs(f->b, &set, &err), 0);
    spec_set_release(&set);
    assert_int_equal(backups_agent_config(&text, f->b, "payments/billing", NULL, NULL, &err), 0);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    json_t *users = json_object_get(j, "users");
    assert_int_equal(json_array_size(users), 3);
    assert_string_equal(
        json_string_value(json_object_get(user_named(users, "zeta_reader"), "password")),
        PW_SEALED);
    assert_int_equal(backups_users_digest(digest, &n, f->b, "payments/billing", &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(json_string_value(json_object_get(j, "users_digest")), digest);
    json_decref(j);

    /* state.db (and its WAL) holds references, never a password */
    char path[160];
    size_t len;
    const char *files[] = {"", "-wal"};
    bool refs_seen = false;
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s%s", f->db_path, files[i]);
        char *buf = slurp(path, &len);
        if (buf == NULL)
            continue;
        assert_false(contains(buf, len, PW_SEALED));
        assert_false(contains(buf, len, PW_ENV));
        assert_false(contains(buf, len, PW_FILE));
        refs_seen |= contains(buf, len, "env:RV_T_USERS_PW");
        free(buf);
    }
    assert_true(refs_seen); /* the search looked where the spec is */

    /* a value sealed for another cluster: the route's RV_EINVAL (409) with
     * the plain reason, no answer, and never the value */
    load_spec(&set, f, f->sealed_other);
    assert_int_equal(backups_set_specs(f->b, &set, &err), 0);
    spec_set_release(&set);
    text = NULL;
    memset(&err, 0, sizeof(err));
    assert_int_equal(backups_agent_config(&text, f->b, "payments/billing", NULL, NULL, &err),
                     RV_EINVAL);
    assert_null(text);
    assert_non_null(strstr(err.msg, "the sealed value does not open for payments/billing"));
    assert_null(strstr(err.msg, PW_SEALED));
    memset(&err, 0, sizeof(err));
    assert_int_equal(backups_users_digest(digest, &n, f->b, "payments/billing", &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "user 'zeta_reader'"));
}

static void test_applied_report(void **state)
{
    struct users_applied ua;
    struct rv_error err = {0};
    char key[128];
    (void)state;
    assert_int_equal(users_applied_key(key, sizeof(key), "payments/billing"), 0);
    assert_string_equal(key, "/clusters/payments/billing/users-applied");
    assert_int_equal(
        users_applied_parse(&ua,
                            "{\"digest\":\""
                            "0123456789abcdef0123456789abcdef"
                            "0123456789abcdef0123456789abcdef\",\"node\":\"billing-0\","
                            "\"error\":null,\"retryable\":false,\"notes\":[\"a\",\"b\"]}",
                            &err),
        0);
    assert_string_equal(ua.node, "billing-0");
    assert_string_equal(ua.error, "");
    assert_string_equal(ua.notes, "a; b");
    assert_int_equal(users_applied_parse(&ua, "{\"digest\":\"short\",\"node\":\"x\"}", &err),
                     RV_EPARSE);
    assert_int_equal(users_applied_parse(&ua, "not json", &err), RV_EPARSE);
}

/* --- the configure_users runner --- */

struct fake_dcs {
    char *value; /* the users-applied report, or NULL */
    char key[160];
    int64_t now;
};

static int fake_read(char **out, const char *key, struct rv_error *err, void *ud)
{
    struct fake_dcs *d = ud;
    (void)err;
    snprintf(d->key, sizeof(d->key), "%s", key);
    *out = d->value != NULL ? strdup(d->value) : NULL;
    return d->value != NULL ? 1 : 0;
}

static int64_t fake_now(void *ud)
{
    return ((struct fake_dcs *)ud)->now;
}

static void set_report(struct fake_dcs *d, const char *digest, const char *error, bool retryable)
{
    json_t *j = json_pack("{s:s, s:s, s:s?, s:b, s:[s]}", "digest", digest, "node", "billing-0",
                          "error", error, "retryable", retryable, "notes", "a note");
    free(d->value);
    d->value = json_dumps(j, JSON_COMPACT);
    json_decref(j);
}

static void test_configure_users_runner(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    struct fake_dcs d = {.now = 1000};
    struct runners_opts o = {.read_key = fake_read, .backups = f->b, .ud = &d, .now = fake_now};
    struct runners *r = NULL;
    struct executor_runner er;
    struct spec_set set;
    struct journal_action a = {.id = (char *)"payments/billing/users/0",
                               .kind = (char *)"configure_users",
                               .cluster = (char *)"payments/billing",
                               .node = (char *)"",
                               .provider = (char *)""};
    char digest[CRYPTO_SHA256_HEX_SIZE], *out = NULL;
    bool done = true;

    assert_int_equal(runners_new(&r, &o, &err), 0);
    runners_executor_runner(&er, r);
    load_spec(&set, f, f->sealed);
    assert_int_equal(runners_set_desired(r, &set, &err), 0);
    spec_set_release(&set);
    assert_int_equal(backups_users_digest(digest, NULL, f->b, "payments/billing", &err), 0);

    /* no report yet: waits until the deadline, then says what is missing */
    assert_int_equal(er.run(&out, &a, "k", d.now, &err, er.ud), RV_ETIMEOUT);
    assert_string_equal(d.key, "/clusters/payments/billing/users-applied");
    assert_non_null(strstr(err.msg, "the primary's agent has not reported applying users yet"));
    assert_int_equal(er.check(&done, &a, "k", &err, er.ud), 0);
    assert_false(done);

    /* a report of another set is not this one */
    set_report(&d, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", NULL, false);
    memset(&err, 0, sizeof(err));
    assert_int_equal(er.run(&out, &a, "k", d.now, &err, er.ud), RV_ETIMEOUT);
    assert_non_null(strstr(err.msg, "last reported another set of users"));

    /* a permanent error for this set fails with the agent's reason */
    set_report(&d, digest, "role 'legacy' exists and was not created by reeve", false);
    memset(&err, 0, sizeof(err));
    assert_int_equal(er.run(&out, &a, "k", d.now + 60, &err, er.ud), RV_EINVAL);
    assert_false(err.retryable);
    assert_string_equal(err.msg, "the primary 'billing-0' could not apply the users: role "
                                 "'legacy' exists and was not created by reeve");

    /* applied: done, with the node, the count and the notes; check agrees */
    set_report(&d, digest, NULL, false);
    assert_int_equal(er.run(&out, &a, "k", d.now + 60, &err, er.ud), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "result")), "users applied");
    assert_string_equal(json_string_value(json_object_get(j, "node")), "billing-0");
    assert_int_equal(json_integer_value(json_object_get(j, "users")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "notes")), "a note");
    assert_null(strstr(out, PW_ENV));
    json_decref(j);
    free(out);
    out = NULL;
    assert_int_equal(er.check(&done, &a, "k", &err, er.ud), 0);
    assert_true(done);

    /* a reference that does not open: a permanent failure, plainly */
    load_spec(&set, f, f->sealed_other);
    assert_int_equal(runners_set_desired(r, &set, &err), 0);
    spec_set_release(&set);
    memset(&err, 0, sizeof(err));
    assert_int_equal(er.run(&out, &a, "k", d.now + 60, &err, er.ud), RV_EINVAL);
    assert_non_null(strstr(err.msg, "does not open for payments/billing"));
    assert_null(out);

    free(d.value);
    runners_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_holds_references_only),
        cmocka_unit_test(test_config_users_and_digests),
        cmocka_unit_test(test_refusals_never_show_the_value),
        cmocka_unit_test(test_agent_config_route),
        cmocka_unit_test(test_applied_report),
        cmocka_unit_test(test_configure_users_runner),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
