/* users.c - applying a cluster's database users on the primary (users.h). */
#include "users.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "backup_db.h"
#include "config.h"
#include "crypto.h"
#include "dcs_client.h"
#include "log.h"

#define COMP "users"
#define MANAGED_COMMENT "managed by reeve"
#define SCRAM_PREFIX "SCRAM-SHA-256$"
/* Iterations a stored verifier may ask for before reeve stops checking it
 * (and sets the password again): PostgreSQL's default is 4096. */
#define SCRAM_ITER_MAX 1000000
#define SCRAM_SALT_MAX 64

/* --- SCRAM-SHA-256 verifiers --- */

static bool b64_field(uint8_t *out, size_t *len, size_t cap, const char *s, size_t n)
{
    return crypto_base64_decode(out, len, cap, s, n) == 0;
}

bool users_scram_matches(const char *verifier, const char *password)
{
    uint8_t salt[SCRAM_SALT_MAX], stored[CRYPTO_SHA256_LEN + 2], server[CRYPTO_SHA256_LEN + 2];
    uint8_t salted[CRYPTO_SHA256_LEN], ck[CRYPTO_SHA256_LEN], sk[CRYPTO_SHA256_LEN];
    uint8_t st[CRYPTO_SHA256_LEN];
    size_t salt_len = 0, stored_len = 0, server_len = 0;
    char *end = NULL;
    bool ok = false;
    if (verifier == NULL || strncmp(verifier, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0)
        return false;
    for (const unsigned char *p = (const unsigned char *)password; *p != '\0'; p++)
        if (*p >= 0x80)
            return false; /* the server SASLpreps it first */
    const char *p = verifier + strlen(SCRAM_PREFIX);
    long iter = strtol(p, &end, 10);
    if (end == p || *end != ':' || iter < 1 || iter > SCRAM_ITER_MAX)
        return false;
    const char *salt_s = end + 1, *dollar = strchr(salt_s, '$');
    const char *colon = dollar != NULL ? strchr(dollar + 1, ':') : NULL;
    if (colon == NULL ||
        !b64_field(salt, &salt_len, sizeof(salt), salt_s, (size_t)(dollar - salt_s)) ||
        !b64_field(stored, &stored_len, sizeof(stored), dollar + 1, (size_t)(colon - dollar - 1)) ||
        !b64_field(server, &server_len, sizeof(server), colon + 1, strlen(colon + 1)) ||
        stored_len != CRYPTO_SHA256_LEN || server_len != CRYPTO_SHA256_LEN)
        return false;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
                          EVP_sha256(), (int)sizeof(salted), salted) == 1 &&
        crypto_hmac_sha256(ck, salted, sizeof(salted), "Client Key", 10) == 0 &&
        crypto_sha256(st, ck, sizeof(ck)) == 0 &&
        crypto_hmac_sha256(sk, salted, sizeof(salted), "Server Key", 10) == 0)
        ok = crypto_equal(st, stored, CRYPTO_SHA256_LEN) &&
             crypto_equal(sk, server, CRYPTO_SHA256_LEN);
    crypto_wipe(salted, sizeof(salted));
    crypto_wipe(ck, sizeof(ck));
    return ok;
}

/* --- libpq --- */

static int connect_pg(PGconn **out, const struct users_pg_target *t, struct rv_error *err)
{
    return pg_connect_local(out, t->socket_dir, t->port, t->superuser, "reeve-agent-users",
                            RV_PG_STATEMENT_TIMEOUT_MS, err);
}

/* Run q (text parameters). *res (may be NULL) keeps a result with rows;
 * state (may be NULL, 6 bytes) gets the SQLSTATE of a failure. what names
 * the step for the message; q itself is never put in a message (it may
 * hold a verifier). */
static int run(PGresult **res, char *state, PGconn *pc, const char *what, const char *q, int n,
               const char *const *params, struct rv_error *err)
{
    PGresult *r = PQexecParams(pc, q, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (res != NULL)
        *res = NULL;
    if (state != NULL)
        state[0] = '\0';
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (res != NULL)
            *res = r;
        else
            PQclear(r);
        return 0;
    }
    const char *code = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    char msg[200], det[160] = "";
    snprintf(msg, sizeof(msg), "%s", primary != NULL ? primary : PQerrorMessage(pc));
    msg[strcspn(msg, "\n")] = '\0';
    if (detail != NULL) {
        /* the first line of a detail such as "owner of table t" */
        snprintf(det, sizeof(det) - 5, " (%s", detail);
        char *nl = strchr(det, '\n');
        if (nl != NULL)
            strcpy(nl, "; ...");
        strcat(det, ")");
    }
    if (state != NULL && code != NULL)
        snprintf(state, 6, "%s", code);
    bool lost = PQstatus(pc) != CONNECTION_OK;
    PQclear(r);
    return rv_error_set(err, lost ? RV_EUNAVAIL : RV_EDB, true, "%s: %s%s", what, msg, det);
}

/* --- what the roles mean --- */

struct want {
    bool createdb, createrole, replication, read, write;
    const char *extra[RV_USERS_ROLES_MAX];
    size_t nextra;
};

static bool name_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > RV_PG_NAME_MAX || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static bool reserved(const char *name, const struct users_pg_target *t)
{
    return strncmp(name, "pg_", 3) == 0 || strncmp(name, "reeve", 5) == 0 ||
           strcmp(name, "postgres") == 0 || strcmp(name, "public") == 0 ||
           (t->superuser != NULL && strcmp(name, t->superuser) == 0) ||
           (t->replication_user != NULL && strcmp(name, t->replication_user) == 0);
}

static int want_from(struct want *w, const json_t *roles, const char *user, struct rv_error *err)
{
    size_t i;
    json_t *r;
    memset(w, 0, sizeof(*w));
    if (!json_is_array(roles) || json_array_size(roles) > RV_USERS_ROLES_MAX)
        return rv_error_set(err, RV_EINVAL, false, "user '%s': roles must be a list of at most %d",
                            user, RV_USERS_ROLES_MAX);
    json_array_foreach(roles, i, r)
    {
        const char *s = json_string_value(r);
        if (s == NULL)
            return rv_error_set(err, RV_EINVAL, false, "user '%s': a role is not a string", user);
        if (strcmp(s, "readonly") == 0) {
            w->read = true;
        } else if (strcmp(s, "readwrite") == 0) {
            w->read = w->write = true;
        } else if (strcmp(s, "admin") == 0) {
            w->read = w->write = w->createdb = w->createrole = true;
        } else if (strcmp(s, "replication") == 0) {
            w->replication = true;
        } else if (name_ok(s) || strncmp(s, "pg_", 3) == 0) {
            w->extra[w->nextra++] = s;
        } else {
            return rv_error_set(err, RV_EINVAL, false, "user '%s': '%.64s' is not a role name",
                                user, s);
        }
    }
    return 0;
}

/* --- one user --- */

struct role_now {
    bool exists, managed, login, createdb, createrole, replication, read, write;
    char *password; /* rolpassword (a verifier), malloc'd */
};

static int role_read(struct role_now *now, PGconn *pc, const char *name, struct rv_error *err)
{
    PGresult *r = NULL;
    const char *p[1] = {name};
    memset(now, 0, sizeof(*now));
    int rc =
        run(&r, NULL, pc, "cannot read the role",
            "SELECT coalesce(rolpassword, ''), rolcanlogin, rolcreatedb, rolcreaterole,"
            " rolreplication, coalesce(shobj_description(oid, 'pg_authid'), '') = '" MANAGED_COMMENT
            "', pg_has_role(oid, 'pg_read_all_data', 'MEMBER'),"
            " pg_has_role(oid, 'pg_write_all_data', 'MEMBER')"
            " FROM pg_authid WHERE rolname = $1",
            1, p, err);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1) {
        now->exists = true;
        now->password = strdup(PQgetvalue(r, 0, 0));
        now->login = PQgetvalue(r, 0, 1)[0] == 't';
        now->createdb = PQgetvalue(r, 0, 2)[0] == 't';
        now->createrole = PQgetvalue(r, 0, 3)[0] == 't';
        now->replication = PQgetvalue(r, 0, 4)[0] == 't';
        now->managed = PQgetvalue(r, 0, 5)[0] == 't';
        now->read = PQgetvalue(r, 0, 6)[0] == 't';
        now->write = PQgetvalue(r, 0, 7)[0] == 't';
        if (now->password == NULL)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    PQclear(r);
    return rc;
}

/* Run the text of b (a statement with identifiers and a verifier already
 * quoted), then wipe it. */
static int run_text(PGconn *pc, const char *what, char *q, struct rv_error *err)
{
    int rc = run(NULL, NULL, pc, what, q, 0, NULL, err);
    crypto_wipe(q, strlen(q));
    free(q);
    return rc;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, f);
    if (vasprintf(&out, f, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}

static const char *attrs(char *buf, size_t cap, const struct want *w)
{
    snprintf(buf, cap, "LOGIN NOSUPERUSER %sCREATEDB %sCREATEROLE %sREPLICATION",
             w->createdb ? "" : "NO", w->createrole ? "" : "NO", w->replication ? "" : "NO");
    return buf;
}

/* GRANT or REVOKE one predefined role to match want. */
static int membership(bool *changed, PGconn *pc, const char *ident, const char *role, bool want,
                      bool has, struct rv_error *err)
{
    if (want == has)
        return 0;
    *changed = true;
    char *q = want ? fmt("GRANT %s TO %s", role, ident) : fmt("REVOKE %s FROM %s", role, ident);
    if (q == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    return run_text(pc, want ? "cannot grant a role" : "cannot revoke a role", q, err);
}

static int grant_extra(bool *changed, PGconn *pc, const char *user, const char *ident,
                       const char *role, struct rv_error *err)
{
    PGresult *r = NULL;
    const char *p[2] = {role, user};
    int rc =
        run(&r, NULL, pc, "cannot read roles",
            "SELECT pg_has_role($2, oid, 'MEMBER') FROM pg_roles WHERE rolname = $1", 2, p, err);
    if (rc != 0)
        return rc;
    bool exists = PQntuples(r) == 1, has = exists && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return rv_error_set(err, RV_EINVAL, false,
                            "user '%s': role '%s' named in its roles does not exist on the server; "
                            "create it first, or remove it from the user's roles",
                            user, role);
    if (has)
        return 0;
    char *ri = PQescapeIdentifier(pc, role, strlen(role));
    char *q = ri != NULL ? fmt("GRANT %s TO %s", ri, ident) : NULL;
    PQfreemem(ri);
    if (q == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    *changed = true;
    return run_text(pc, "cannot grant a role", q, err);
}

/* Create or bring one role in line, in the open transaction. */
static int user_change(bool *created, bool *changed, PGconn *pc, const char *name,
                       const char *ident, const char *password, const struct want *w,
                       const struct role_now *now, struct rv_error *err)
{
    char a[128];
    char *verifier = NULL, *lit = NULL, *q = NULL;
    int rc = 0;
    bool set_pw = !now->exists || !users_scram_matches(now->password, password);
    if (set_pw) {
        verifier = PQencryptPasswordConn(pc, password, name, "scram-sha-256");
        lit = verifier != NULL ? PQescapeLiteral(pc, verifier, strlen(verifier)) : NULL;
        if (lit == NULL) {
            rc = rv_error_set(err, RV_EDB, true, "user '%s': cannot compute its SCRAM verifier",
                              name);
            goto out;
        }
    }
    if (!now->exists) {
        q = fmt("CREATE ROLE %s WITH %s PASSWORD %s", ident, attrs(a, sizeof(a), w), lit);
        *created = true;
    } else if (set_pw || !now->login || now->createdb != w->createdb ||
               now->createrole != w->createrole || now->replication != w->replication) {
        q = set_pw ? fmt("ALTER ROLE %s WITH %s PASSWORD %s", ident, attrs(a, sizeof(a), w), lit)
                   : fmt("ALTER ROLE %s WITH %s", ident, attrs(a, sizeof(a), w));
        *changed = true;
    }
    if ((!now->exists || *changed) && q == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (q != NULL &&
        (rc = run_text(pc, now->exists ? "cannot alter the role" : "cannot create the role", q,
                       err)) != 0)
        goto out;
    if (!now->exists) {
        q = fmt("COMMENT ON ROLE %s IS '" MANAGED_COMMENT "'", ident);
        rc = q != NULL ? run_text(pc, "cannot mark the role", q, err)
                       : rv_error_set(err, RV_ENOMEM, false, "out of memory");
        if (rc != 0)
            goto out;
    }
    rc = membership(changed, pc, ident, "pg_read_all_data", w->read, now->read, err);
    if (rc == 0)
        rc = membership(changed, pc, ident, "pg_write_all_data", w->write, now->write, err);
    for (size_t i = 0; rc == 0 && i < w->nextra; i++)
        rc = grant_extra(changed, pc, name, ident, w->extra[i], err);
out:
    if (lit != NULL)
        crypto_wipe(lit, strlen(lit));
    PQfreemem(lit);
    PQfreemem(verifier);
    return rc;
}

static int apply_one(struct users_result *out, PGconn *pc, const struct users_pg_target *t,
                     const json_t *u, struct rv_error *err)
{
    const char *name = json_string_value(json_object_get(u, "name"));
    const char *password = json_string_value(json_object_get(u, "password"));
    struct want w;
    struct role_now now = {0};
    struct rv_error e = {0};
    bool created = false, changed = false;
    char *ident = NULL;
    if (!name_ok(name))
        return rv_error_set(err, RV_EINVAL, false,
                            "a user name must be lowercase letters, digits and '_' (got '%.64s')",
                            name != NULL ? name : "");
    if (reserved(name, t))
        return rv_error_set(err, RV_EINVAL, false,
                            "user '%s': the name is reserved for PostgreSQL or reeve's own roles; "
                            "choose another name",
                            name);
    if (password == NULL || password[0] == '\0')
        return rv_error_set(err, RV_EINVAL, false, "user '%s' has no password", name);
    int rc = want_from(&w, json_object_get(u, "roles"), name, err);
    if (rc == 0)
        rc = run(NULL, NULL, pc, "cannot begin a transaction", "BEGIN", 0, NULL, err);
    if (rc != 0)
        return rc;
    rc = role_read(&now, pc, name, err);
    if (rc == 0 && now.exists && !now.managed)
        rc = rv_error_set(err, RV_EINVAL, false,
                          "role '%s' exists and was not created by reeve; reeve does not take "
                          "over roles it did not create: drop or rename it, or choose another "
                          "user name",
                          name);
    if (rc == 0 && (ident = PQescapeIdentifier(pc, name, strlen(name))) == NULL)
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (rc == 0)
        rc = user_change(&created, &changed, pc, name, ident, password, &w, &now, err);
    if (rc == 0)
        rc = run(NULL, NULL, pc, "cannot commit", "COMMIT", 0, NULL, err);
    if (rc != 0) {
        run(NULL, NULL, pc, "rollback", "ROLLBACK", 0, NULL, &e);
        if (err->code != RV_EINVAL)
            rv_error_set(err, err->code, err->retryable, "user '%s': %s", name, err->msg);
    } else if (created) {
        out->created++;
        log_info(COMP, "user '%s' created", name);
    } else if (changed) {
        out->altered++;
        log_info(COMP, "user '%s' altered", name);
    } else {
        out->unchanged++;
    }
    PQfreemem(ident);
    free(now.password);
    return rc;
}

/* --- drops --- */

static bool listed(const json_t *users, const char *name)
{
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
    {
        const char *n = json_string_value(json_object_get(u, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

static void note(struct users_result *out, const char *f, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct users_result *out, const char *f, ...)
{
    va_list ap;
    if (out->nnotes >= RV_USERS_NOTES_MAX)
        return;
    va_start(ap, f);
    vsnprintf(out->notes[out->nnotes++], sizeof(out->notes[0]), f, ap);
    va_end(ap);
}

static int drop_one(struct users_result *out, PGconn *pc, const char *name, struct rv_error *err)
{
    char state[6];
    struct rv_error e = {0};
    char *ident = PQescapeIdentifier(pc, name, strlen(name));
    char *q = ident != NULL ? fmt("DROP ROLE %s", ident) : NULL;
    int rc;
    if (q == NULL) {
        PQfreemem(ident);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    rc = run(NULL, state, pc, "cannot drop the role", q, 0, NULL, &e);
    free(q);
    if (rc == 0) {
        out->dropped++;
        log_info(COMP, "user '%s' dropped (no longer in the spec)", name);
    } else if (strcmp(state, "2BP01") == 0) {
        /* it owns objects or holds privileges: never REASSIGN/DROP OWNED */
        q = fmt("ALTER ROLE %s WITH NOLOGIN", ident);
        rc = q != NULL ? run_text(pc, "cannot make the role NOLOGIN", q, err)
                       : rv_error_set(err, RV_ENOMEM, false, "out of memory");
        if (rc == 0) {
            out->kept++;
            note(out,
                 "user '%s' is no longer in the spec but owns objects or holds privileges, so it "
                 "was made NOLOGIN and kept; reassign or drop them (REASSIGN OWNED BY %s TO ...; "
                 "DROP OWNED BY %s; in each database), then DROP ROLE %s",
                 name, ident, ident, ident);
            log_warn(COMP, "%s", out->notes[out->nnotes - 1]);
        }
    } else {
        rc = rv_error_set(err, e.code, e.retryable, "user '%s': %s", name, e.msg);
    }
    PQfreemem(ident);
    return rc;
}

static int drop_unlisted(struct users_result *out, PGconn *pc, const struct users_pg_target *t,
                         const json_t *users, struct rv_error *err)
{
    PGresult *r = NULL;
    int rc = run(&r, NULL, pc, "cannot list reeve's roles",
                 "SELECT rolname FROM pg_authid WHERE shobj_description(oid, 'pg_authid') = "
                 "'" MANAGED_COMMENT "' ORDER BY rolname",
                 0, NULL, err);
    int first = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        struct rv_error e = {0};
        if (listed(users, name) || reserved(name, t))
            continue;
        int one = drop_one(out, pc, name, &e);
        if (one != 0 && first == 0) {
            first = one;
            *err = e;
        }
    }
    PQclear(r);
    return rc != 0 ? rc : first;
}

/* --- the set --- */

int users_apply_pg(struct users_result *out, const struct users_pg_target *t, const json_t *users,
                   struct rv_error *err)
{
    PGconn *pc = NULL;
    PGresult *r = NULL;
    size_t i;
    json_t *u;
    int first = 0;
    memset(out, 0, sizeof(*out));
    if (!json_is_array(users) || json_array_size(users) > RV_USERS_MAX)
        return rv_error_set(err, RV_EINVAL, false, "the users must be a list of at most %d",
                            RV_USERS_MAX);
    int rc = connect_pg(&pc, t, err);
    if (rc == 0)
        rc = run(&r, NULL, pc, "cannot ask the server its role", "SELECT pg_is_in_recovery()", 0,
                 NULL, err);
    if (rc != 0)
        goto out;
    bool standby = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (standby) {
        rc = rv_error_set(err, RV_ECONFLICT, true,
                          "this server is a standby: users are applied on the primary");
        goto out;
    }
    json_array_foreach(users, i, u)
    {
        struct rv_error e = {0};
        int one = apply_one(out, pc, t, u, &e);
        if (one != 0 && first == 0) {
            first = one;
            *err = e;
        }
        if (one != 0)
            log_warn(COMP, "%s", e.msg);
    }
    struct rv_error e = {0};
    int d = drop_unlisted(out, pc, t, users, &e);
    if (d != 0) {
        log_warn(COMP, "%s", e.msg);
        if (first == 0) {
            first = d;
            *err = e;
        }
    }
    rc = first;
out:
    PQfinish(pc);
    return rc;
}

/* --- the backup thread's call --- */

static char *state_get(struct backup_db *db, const char *key)
{
    struct rv_error e = {0};
    char *v = NULL;
    if (backup_db_state_get(&v, db, key, &e) != 0)
        return NULL;
    return v;
}

static json_t *report_json(const char *digest, const char *node, int rc, const struct rv_error *err,
                           const struct users_result *res)
{
    json_t *notes = json_array();
    for (size_t i = 0; notes != NULL && i < res->nnotes; i++)
        json_array_append_new(notes, json_string(res->notes[i]));
    return json_pack("{s:s, s:s, s:s?, s:b, s:o, s:I, s:I, s:I, s:I}", "digest", digest, "node",
                     node, "error", rc != 0 ? err->msg : NULL, "retryable",
                     rc != 0 && err->retryable, "notes", notes ? notes : json_array(), "created",
                     (json_int_t)res->created, "altered", (json_int_t)res->altered, "dropped",
                     (json_int_t)res->dropped, "kept", (json_int_t)res->kept);
}

/* Apply when this node is the primary; stores the report to send. */
static void apply_now(const struct agent_config *cfg, struct backup_db *db, const json_t *config,
                      const char *want)
{
    struct users_pg_target t = {.socket_dir = cfg->pg.socket_dir,
                                .port = cfg->pg.port,
                                .superuser = cfg->pg.superuser,
                                .replication_user = cfg->pg.replication_user};
    struct users_result res;
    struct rv_error e = {0};
    const char *engine = json_string_value(json_object_get(config, "engine"));
    int rc = engine != NULL && strcmp(engine, "mariadb") == 0
                 ? users_apply_mdb(&res, cfg, json_object_get(config, "users"), &e)
                 : users_apply_pg(&res, &t, json_object_get(config, "users"), &e);
    if (rc == RV_ECONFLICT || rc == RV_EUNAVAIL)
        return; /* a standby, or the server is down: nothing to report */
    json_t *rep = report_json(want, cfg->node, rc, &e, &res);
    char *text = rep != NULL ? json_dumps(rep, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *old = state_get(db, "users_report");
    json_decref(rep);
    if (text == NULL)
        goto out;
    if (strlen(text) > RV_USERS_REPORT_MAX) { /* notes and the error are bounded: not expected */
        log_warn(COMP, "the users report is %zu bytes, over %d: not sent", strlen(text),
                 RV_USERS_REPORT_MAX);
        goto out;
    }
    if (old == NULL || strcmp(old, text) != 0) {
        if (rc == 0)
            log_info(COMP,
                     "users applied (digest %.12s): %zu created, %zu altered, %zu dropped, %zu "
                     "kept",
                     want, res.created, res.altered, res.dropped, res.kept);
        else
            log_warn(COMP, "users not applied (digest %.12s): %s", want, e.msg);
    }
    if (backup_db_state_set(db, "users_report", text, &e) != 0 ||
        (rc == 0 && backup_db_state_set(db, "users_applied", want, &e) != 0))
        log_warn(COMP, "cannot remember the users applied: %s", e.msg);
out:
    free(text);
    free(old);
}

/* Send the stored report until the reconciler has it. */
static void report_now(const struct agent_config *cfg, struct backup_db *db,
                       struct dcs_client *http)
{
    char key[RV_DCS_KEY_MAX + 1];
    struct rv_error e = {0};
    char *text = state_get(db, "users_report"), *sent = state_get(db, "users_reported");
    json_t *v = text != NULL ? json_loads(text, 0, NULL) : NULL;
    snprintf(key, sizeof(key), "/clusters/%s/%s/users-applied", cfg->namespace_, cfg->cluster);
    if (v == NULL || (sent != NULL && strcmp(sent, text) == 0))
        goto out;
    if (dcs_client_put(NULL, http, key, v, 0, &e) != 0) {
        log_debug(COMP, "users report not sent (retrying next poll): %s", e.msg);
        goto out;
    }
    if (backup_db_state_set(db, "users_reported", text, &e) != 0)
        log_warn(COMP, "cannot remember the users report: %s", e.msg);
out:
    json_decref(v);
    free(text);
    free(sent);
}

void users_sync(const struct agent_config *cfg, struct backup_db *db, const json_t *config,
                struct dcs_client *http)
{
    const char *want = json_string_value(json_object_get(config, "users_digest"));
    const char *engine = json_string_value(json_object_get(config, "engine"));
    if (db == NULL || want == NULL ||
        (engine != NULL && strcmp(engine, "postgresql") != 0 && strcmp(engine, "mariadb") != 0))
        return;
    char *applied = state_get(db, "users_applied");
    if (applied == NULL || strcmp(applied, want) != 0)
        apply_now(cfg, db, config, want);
    free(applied);
    report_now(cfg, db, http);
}
