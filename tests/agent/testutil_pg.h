/* testutil_pg.h - PostgreSQL for the tests in tests/agent/: whether the
 * server is installed, throwaway nodes (data, socket and log under a test
 * directory, driven by the engine adapter) and one-value queries as the
 * superuser over the node's socket. Needs libpq; see testutil.h for the
 * rest. */
#ifndef REEVE_TESTS_AGENT_TESTUTIL_PG_H
#define REEVE_TESTS_AGENT_TESTUTIL_PG_H

#include <stdbool.h>
#include <stdio.h>

#include "engine_pg.h"
#include "testutil.h"

#define TU_PG_BIN "/usr/lib/postgresql/15/bin"
/* The superuser the test nodes are made with. */
#define TU_PG_SUPERUSER "reeve"

bool tu_have_pg(void);

/* Skip the calling test when PostgreSQL 15 is not installed. */
#define TU_SKIP_WITHOUT_PG()                                                                       \
    do {                                                                                           \
        if (!tu_have_pg()) {                                                                       \
            fprintf(stderr, "skipped: PostgreSQL 15 not installed in " TU_PG_BIN "\n");            \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The user the servers run as: "postgres" when root, else NULL. */
const char *tu_pg_os_user(void);

/* Start TU_PG_BIN/args[0] as tu_pg_os_user(); see tu_spawn_as. PGPASSWORD
 * is set when password is not NULL. */
pid_t tu_pg_spawn(const char *const *args, int out_fd, const char *password);

struct tu_pg_node {
    struct pg_engine e;
    char data[256];
    char sock[256];
    char log[256];
    char addr[32];
    const char *name;
    bool inited;
};

/* Name n and place it below base: <base>/<sub>, <sub>-sock and <sub>.log.
 * The configuration returned has these, TU_PG_BIN, addr and port, the
 * superuser TU_PG_SUPERUSER, the replication user "replicator", name as the
 * application name, the servers' user and no_sync; the caller adds the
 * replication password and any extra parameters. */
struct pg_engine_config tu_pg_node_config(struct tu_pg_node *n, const char *base, const char *name,
                                          const char *addr, const char *sub, int port);
/* pg_engine_init with cfg; prints the error and returns non-zero on failure. */
int tu_pg_node_init(struct tu_pg_node *n, const struct pg_engine_config *cfg);
/* Stop an initialised node at once and release it. */
void tu_pg_node_stop(struct tu_pg_node *n);

/* q as user over the socket directory sock on port; the first value of the
 * first row into out ("" for none) when out is not NULL. On an error false,
 * the error printed with who. */
bool tu_pg_query(const char *sock, int port, const char *user, const char *who, const char *q,
                 char *out, size_t cap);
/* tu_pg_query as TU_PG_SUPERUSER on node n. */
bool tu_pg_sql(const struct tu_pg_node *n, const char *q, char *out, size_t cap);
/* tu_pg_sql, failing the test on an error. */
void tu_pg_sql_ok(const struct tu_pg_node *n, const char *q);
/* tu_wait_value with tu_pg_sql on n. */
void tu_pg_wait_value(const struct tu_pg_node *n, const char *q, const char *want, int ms);

#endif
