/* testutil_pg.c - PostgreSQL for the tests in tests/agent/ (see
 * testutil_pg.h). */
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil_pg.h"

/* How long a test connection may take (seconds, as libpq wants it). */
#define TU_PG_CONNECT_TIMEOUT "5"

bool tu_have_pg(void)
{
    return access(TU_PG_BIN "/initdb", X_OK) == 0;
}

const char *tu_pg_os_user(void)
{
    return tu_os_user("postgres");
}

pid_t tu_pg_spawn(const char *const *args, int out_fd, const char *password)
{
    char exe[256];
    int n = snprintf(exe, sizeof exe, TU_PG_BIN "/%s", args[0]);
    if (n < 0 || (size_t)n >= sizeof exe)
        return -1;
    return tu_spawn_as("postgres", exe, args, out_fd, password ? "PGPASSWORD" : NULL, password);
}

struct pg_engine_config tu_pg_node_config(struct tu_pg_node *n, const char *base, const char *name,
                                          const char *addr, const char *sub, int port)
{
    n->name = name;
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    snprintf(n->data, sizeof n->data, "%s/%s", base, sub);
    snprintf(n->sock, sizeof n->sock, "%s/%s-sock", base, sub);
    snprintf(n->log, sizeof n->log, "%s/%s.log", base, sub);
    struct pg_engine_config cfg = {
        .bin_dir = TU_PG_BIN,
        .data_dir = n->data,
        .socket_dir = n->sock,
        .log_file = n->log,
        .listen_address = n->addr,
        .port = port,
        .superuser = TU_PG_SUPERUSER,
        .replication_user = "replicator",
        .application_name = name,
        .os_user = tu_pg_os_user(),
        .no_sync = true,
    };
    return cfg;
}

int tu_pg_node_init(struct tu_pg_node *n, const struct pg_engine_config *cfg)
{
    struct rv_error err = {0};
    int rc = pg_engine_init(&n->e, cfg, &err);
    if (rc != 0)
        fprintf(stderr, "init %s: %s\n", n->name, err.msg);
    n->inited = rc == 0;
    return rc;
}

void tu_pg_node_stop(struct tu_pg_node *n)
{
    struct rv_error err = {0};
    if (!n->inited)
        return;
    if (pg_engine_stop(&n->e, PG_STOP_IMMEDIATE, &err) != 0)
        fprintf(stderr, "teardown %s: %s\n", n->name, err.msg);
    pg_engine_release(&n->e);
    n->inited = false;
}

bool tu_pg_query(const char *sock, int port, const char *user, const char *who, const char *q,
                 char *out, size_t cap)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *const k[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *const v[] = {sock, p, user, "postgres", TU_PG_CONNECT_TIMEOUT, NULL};
    PGconn *c = PQconnectdbParams(k, v, 0);
    bool ok = false;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s", who, PQerrorMessage(c));
        PQfinish(c);
        return false;
    }
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        ok = true;
        if (out != NULL)
            snprintf(out, cap, "%s",
                     st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    } else {
        fprintf(stderr, "sql %s: %s", who, PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
    return ok;
}

bool tu_pg_sql(const struct tu_pg_node *n, const char *q, char *out, size_t cap)
{
    return tu_pg_query(n->sock, n->e.port, TU_PG_SUPERUSER, n->name, q, out, cap);
}

void tu_pg_sql_ok(const struct tu_pg_node *n, const char *q)
{
    if (!tu_pg_sql(n, q, NULL, 0))
        fail_msg("query on %s failed: %s", n->name, q);
}

static bool node_query(const void *node, const char *q, char *out, size_t cap)
{
    return tu_pg_sql(node, q, out, cap);
}

void tu_pg_wait_value(const struct tu_pg_node *n, const char *q, const char *want, int ms)
{
    tu_wait_value(node_query, n, n->name, q, want, ms);
}
