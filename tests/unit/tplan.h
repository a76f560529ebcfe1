/* tplan.h - hand-made plans for the executor and journal tests. Include it
 * after <cmocka.h>. */
#ifndef REEVE_TEST_TPLAN_H
#define REEVE_TEST_TPLAN_H

#include <stdlib.h>
#include <string.h>

#include "planner.h"

/* Append an add_replica action with id "<cluster>/<name>", key
 * "key-<id>", the given blocked reason (or NULL) and dependencies. */
static void tplan_add(struct plan *p, const char *cluster, const char *name, const char *blocked,
                      size_t ndeps, const size_t *deps)
{
    if (p->nactions == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->actions = realloc(p->actions, p->cap * sizeof(*p->actions));
        assert_non_null(p->actions);
    }
    struct plan_action *a = &p->actions[p->nactions++];
    memset(a, 0, sizeof(*a));
    char id[128];
    snprintf(id, sizeof(id), "%s/%s", cluster, name);
    a->id = strdup(id);
    a->kind = PLAN_ADD_REPLICA;
    a->cluster = strdup(cluster);
    a->node = strdup(name);
    a->reason = strdup("test");
    a->waits_for = strdup("");
    a->blocked = blocked ? strdup(blocked) : NULL;
    snprintf(a->idempotency_key, sizeof(a->idempotency_key), "key-%.60s", id);
    if (ndeps > 0) {
        a->deps = calloc(ndeps, sizeof(*a->deps));
        assert_non_null(a->deps);
        memcpy(a->deps, deps, ndeps * sizeof(*deps));
        a->ndeps = ndeps;
    }
}

#endif
