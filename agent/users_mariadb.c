/* users_mariadb.c - a cluster's database users on a MariaDB primary
 * (users.h, docs/users.md "MariaDB"): the configuration's users mapped to
 * mdb_engine_sync_users() on the cluster's database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "engine_mariadb.h"
#include "users.h"

void users_mdb_database(char *out, size_t cap, const char *cluster)
{
    size_t i = 0;
    for (; cluster[i] != '\0' && i + 1 < cap; i++)
        out[i] = cluster[i] == '-' ? '_' : cluster[i];
    out[i] = '\0';
}

/* The roles of one configured user: readwrite and admin get the adapter's
 * read-write set on the database, replication the global grants. */
static int user_of(struct mdb_user *u, const json_t *v, struct rv_error *err)
{
    const char *name = json_string_value(json_object_get(v, "name"));
    json_t *roles = json_object_get(v, "roles");
    size_t i;
    json_t *r;
    *u = (struct mdb_user){name, json_string_value(json_object_get(v, "password")),
                           MDB_ROLE_READONLY, false};
    if (name == NULL || u->password == NULL)
        return rv_error_set(err, RV_EINVAL, false, "a configured user lacks a name or password");
    json_array_foreach(roles, i, r)
    {
        const char *s = json_string_value(r);
        if (s != NULL && (strcmp(s, "readwrite") == 0 || strcmp(s, "admin") == 0))
            u->role = MDB_ROLE_READWRITE;
        else if (s != NULL && strcmp(s, "replication") == 0)
            u->replication = true;
    }
    return 0;
}

int users_apply_mdb(struct users_result *out, const struct agent_config *cfg, const json_t *users,
                    struct rv_error *err)
{
    struct mdb_engine *e = calloc(1, sizeof(*e));
    struct mdb_user *list = NULL;
    struct mdb_users_result res = {0};
    char db[RV_MDB_NAME_MAX + 1];
    size_t n = json_array_size(users), i;
    json_t *v;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (!json_is_array(users) || n > RV_USERS_MAX) {
        free(e);
        return rv_error_set(err, RV_EINVAL, false, "the users must be a list of at most %d",
                            RV_USERS_MAX);
    }
    list = calloc(n > 0 ? n : 1, sizeof(*list));
    if (e == NULL || list == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    json_array_foreach(users, i, v) if (rc == 0) rc = user_of(&list[i], v, err);
    if (rc != 0)
        goto out;
    /* The server's own engine state (reeve.cnf) is only read here: the SQL
     * goes over the node's socket, as the agent's OS user. */
    struct mdb_engine_config mc;
    agent_config_mdb(&mc, cfg);
    if ((rc = mdb_engine_init(e, &mc, err)) != 0)
        goto out;
    users_mdb_database(db, sizeof(db), cfg->cluster);
    rc = mdb_engine_sync_users(e, db, list, n, &res, err);
    if (rc == RV_EUNAVAIL || rc == RV_EDB)
        err->retryable = true;
    out->created = res.created;
    out->altered = res.altered;
    out->dropped = res.dropped;
    out->unchanged = res.unchanged;
    mdb_engine_release(e);
out:
    free(list);
    free(e);
    return rc;
}
