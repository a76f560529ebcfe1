/* test_dcs.c - the built-in DCS: revisions, sessions and expiry on an
 * injected clock, locks through transactions, watch history and its
 * compaction, and persistence across a reopen with the session grace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcs.h"
#include "limits.h"

struct clock {
    int64_t now;
};

static int64_t fake_clock(void *payload)
{
    return ((struct clock *)payload)->now;
}

static struct dcs *open_mem(struct clock *c)
{
    struct dcs *d;
    struct rv_error err;
    if (dcs_open(&d, NULL, fake_clock, c, &err) != 0)
        fail_msg("dcs_open: %s", err.msg);
    return d;
}

static void put_ok(struct dcs *d, const char *key, const char *value, uint64_t session)
{
    struct rv_error err;
    if (dcs_put(NULL, d, key, value, session, &err) != 0)
        fail_msg("put %s: %s", key, err.msg);
}

static int count_kv(const struct dcs_kv *kv, void *payload)
{
    (void)kv;
    (*(int *)payload)++;
    return 0;
}

static void test_revisions(void **state)
{
    (void)state;
    struct clock c = {0};
    struct dcs *d = open_mem(&c);
    struct rv_error err;
    uint64_t rev;
    bool deleted;

    assert_int_equal(dcs_revision(d), 0);
    assert_int_equal(dcs_put(&rev, d, "/clusters/a/b/state", "{\"x\":1}", 0, &err), 0);
    assert_int_equal(rev, 1);
    const struct dcs_kv *kv = dcs_get(d, "/clusters/a/b/state");
    assert_non_null(kv);
    assert_string_equal(kv->value, "{\"x\":1}");
    assert_int_equal(kv->create_rev, 1);
    assert_int_equal(kv->mod_rev, 1);
    assert_int_equal(kv->version, 1);

    assert_int_equal(dcs_put(&rev, d, "/clusters/a/b/state", "{\"x\":2}", 0, &err), 0);
    assert_int_equal(rev, 2);
    kv = dcs_get(d, "/clusters/a/b/state");
    assert_int_equal(kv->create_rev, 1);
    assert_int_equal(kv->mod_rev, 2);
    assert_int_equal(kv->version, 2);

    put_ok(d, "/clusters/a/b/nodes/b-0", "{}", 0);
    put_ok(d, "/clusters/a/bb/state", "{}", 0);
    assert_int_equal(dcs_revision(d), 4);

    int n = 0;
    dcs_range(d, "/clusters/a/b/", count_kv, &n);
    assert_int_equal(n, 2); /* not /clusters/a/bb */
    n = 0;
    dcs_range(d, "/clusters/a/b", count_kv, &n);
    assert_int_equal(n, 3);

    assert_int_equal(dcs_delete(&deleted, &rev, d, "/clusters/a/b/state", &err), 0);
    assert_true(deleted);
    assert_int_equal(rev, 5);
    assert_null(dcs_get(d, "/clusters/a/b/state"));
    assert_int_equal(dcs_delete(&deleted, &rev, d, "/clusters/a/b/state", &err), 0);
    assert_false(deleted);
    assert_int_equal(rev, 5);

    /* re-created: a new create_rev and version 1 */
    put_ok(d, "/clusters/a/b/state", "{}", 0);
    kv = dcs_get(d, "/clusters/a/b/state");
    assert_int_equal(kv->create_rev, 6);
    assert_int_equal(kv->version, 1);

    /* bad keys and values are refused without a new revision */
    assert_int_equal(dcs_put(NULL, d, "clusters/x", "{}", 0, &err), RV_EINVAL);
    assert_int_equal(dcs_put(NULL, d, "/a//b", "{}", 0, &err), RV_EINVAL);
    assert_int_equal(dcs_put(NULL, d, "/a/../b", "{}", 0, &err), RV_EINVAL);
    assert_int_equal(dcs_put(NULL, d, "/a/b/", "{}", 0, &err), RV_EINVAL);
    assert_int_equal(dcs_put(NULL, d, "/a/b c", "{}", 0, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "not allowed"));
    char *big = malloc(RV_DCS_VALUE_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', RV_DCS_VALUE_MAX + 1);
    big[RV_DCS_VALUE_MAX + 1] = '\0';
    assert_int_equal(dcs_put(NULL, d, "/a/b", big, 0, &err), RV_EINVAL);
    free(big);
    assert_int_equal(dcs_revision(d), 6);
    assert_int_equal(dcs_key_check("/clusters/", true, &err), 0);
    dcs_free(d);
}

static void test_session_expiry(void **state)
{
    (void)state;
    struct clock c = {.now = 1000};
    struct dcs *d = open_mem(&c);
    struct rv_error err;
    uint64_t s;

    assert_int_equal(dcs_session_grant(&s, d, 10, "", &err), RV_EINVAL);
    assert_int_equal(dcs_session_grant(&s, d, 5000, "ns/c/n0", &err), 0);
    assert_true(s > 0);
    put_ok(d, "/clusters/ns/c/nodes/n0", "{\"role\":\"replica\"}", s);
    put_ok(d, "/clusters/ns/c/state", "{}", 0);
    uint64_t rev = dcs_revision(d);

    dcs_tick(d, 5999);
    assert_non_null(dcs_get(d, "/clusters/ns/c/nodes/n0"));
    c.now = 5000;
    assert_int_equal(dcs_session_keepalive(d, s, &err), 0); /* deadline now 10000 */
    dcs_tick(d, 9999);
    assert_non_null(dcs_get(d, "/clusters/ns/c/nodes/n0"));
    assert_int_equal(dcs_revision(d), rev);

    dcs_tick(d, 10000);
    assert_null(dcs_get(d, "/clusters/ns/c/nodes/n0"));
    assert_non_null(dcs_get(d, "/clusters/ns/c/state")); /* not attached */
    assert_int_equal(dcs_revision(d), rev + 1);
    assert_int_equal(dcs_session_keepalive(d, s, &err), RV_ENOTFOUND);
    assert_int_equal(dcs_put(NULL, d, "/clusters/ns/c/nodes/n0", "{}", s, &err), RV_ENOTFOUND);
    assert_int_equal(dcs_session_info(NULL, NULL, d, s), RV_ENOTFOUND);

    /* revoke deletes at once */
    uint64_t s2;
    assert_int_equal(dcs_session_grant(&s2, d, 5000, "", &err), 0);
    assert_true(s2 > s);
    put_ok(d, "/x/y", "1", s2);
    assert_int_equal(dcs_session_revoke(d, s2, &err), 0);
    assert_null(dcs_get(d, "/x/y"));
    dcs_free(d);
}

/* Take the leader key iff absent, attached to session. */
static bool lock_acquire(struct dcs *d, uint64_t session, const char *me)
{
    struct rv_error err;
    bool won = false;
    struct dcs_cmp cmp = {.type = DCS_CMP_NOT_EXISTS, .key = "/clusters/p/b/leader"};
    struct dcs_op op = {
        .type = DCS_OP_PUT, .key = "/clusters/p/b/leader", .value = me, .session = session};
    struct dcs_txn t = {.cmp = &cmp, .ncmp = 1, .success = &op, .nsuccess = 1};
    if (dcs_txn(&won, NULL, d, &t, &err) != 0)
        fail_msg("txn: %s", err.msg);
    return won;
}

static bool lock_release(struct dcs *d, const char *me)
{
    struct rv_error err;
    bool ok = false;
    struct dcs_cmp cmp = {.type = DCS_CMP_VALUE, .key = "/clusters/p/b/leader", .value = me};
    struct dcs_op op = {.type = DCS_OP_DELETE, .key = "/clusters/p/b/leader"};
    struct dcs_txn t = {.cmp = &cmp, .ncmp = 1, .success = &op, .nsuccess = 1};
    if (dcs_txn(&ok, NULL, d, &t, &err) != 0)
        fail_msg("txn: %s", err.msg);
    return ok;
}

static void test_lock(void **state)
{
    (void)state;
    struct clock c = {0};
    struct dcs *d = open_mem(&c);
    struct rv_error err;
    uint64_t sa, sb;
    assert_int_equal(dcs_session_grant(&sa, d, 3000, "", &err), 0);
    assert_int_equal(dcs_session_grant(&sb, d, 3000, "", &err), 0);

    assert_true(lock_acquire(d, sa, "\"a\""));
    uint64_t rev = dcs_revision(d);
    assert_false(lock_acquire(d, sb, "\"b\""));
    assert_int_equal(dcs_revision(d), rev); /* a failed compare changes nothing */
    assert_string_equal(dcs_get(d, "/clusters/p/b/leader")->value, "\"a\"");

    /* renew: only while the key is still mine (same mod_rev) */
    bool ok;
    struct dcs_cmp cmp = {.type = DCS_CMP_MOD_REV, .key = "/clusters/p/b/leader", .mod_rev = rev};
    struct dcs_op op = {
        .type = DCS_OP_PUT, .key = "/clusters/p/b/leader", .value = "\"a\"", .session = sa};
    struct dcs_txn t = {.cmp = &cmp, .ncmp = 1, .success = &op, .nsuccess = 1};
    assert_int_equal(dcs_txn(&ok, NULL, d, &t, &err), 0);
    assert_true(ok);
    assert_int_equal(dcs_get(d, "/clusters/p/b/leader")->version, 2);
    assert_int_equal(dcs_txn(&ok, NULL, d, &t, &err), 0); /* stale mod_rev now */
    assert_false(ok);

    /* session compare */
    struct dcs_cmp cs = {.type = DCS_CMP_SESSION, .key = "/clusters/p/b/leader", .session = sb};
    struct dcs_txn ts = {.cmp = &cs, .ncmp = 1};
    assert_int_equal(dcs_txn(&ok, NULL, d, &ts, &err), 0);
    assert_false(ok);

    /* b cannot release a's lock; a can */
    assert_false(lock_release(d, "\"b\""));
    assert_non_null(dcs_get(d, "/clusters/p/b/leader"));
    assert_true(lock_release(d, "\"a\""));
    assert_null(dcs_get(d, "/clusters/p/b/leader"));
    assert_true(lock_acquire(d, sb, "\"b\""));

    /* a's session expiring does not touch b's lock; b's does */
    c.now = 2000;
    assert_int_equal(dcs_session_keepalive(d, sb, &err), 0);
    dcs_tick(d, 3000);
    assert_int_equal(dcs_session_info(NULL, NULL, d, sa), RV_ENOTFOUND);
    assert_non_null(dcs_get(d, "/clusters/p/b/leader"));
    dcs_tick(d, 5000);
    assert_null(dcs_get(d, "/clusters/p/b/leader"));

    /* a transaction with a bad op is refused whole */
    struct dcs_op two[2] = {{.type = DCS_OP_PUT, .key = "/k/1", .value = "1"},
                            {.type = DCS_OP_PUT, .key = "/k/1", .value = "2"}};
    struct dcs_txn tt = {.success = two, .nsuccess = 2};
    rev = dcs_revision(d);
    assert_int_equal(dcs_txn(&ok, NULL, d, &tt, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "twice"));
    two[1].key = "/k/2";
    two[1].session = 999;
    assert_int_equal(dcs_txn(&ok, NULL, d, &tt, &err), RV_ENOTFOUND);
    assert_null(dcs_get(d, "/k/1"));
    assert_int_equal(dcs_revision(d), rev);
    two[1].session = 0;
    assert_int_equal(dcs_txn(&ok, NULL, d, &tt, &err), 0);
    assert_int_equal(dcs_revision(d), rev + 1); /* one revision for both */
    assert_int_equal(dcs_get(d, "/k/1")->mod_rev, dcs_get(d, "/k/2")->mod_rev);
    dcs_free(d);
}

struct seen {
    int calls;
    int status;
    int events;
    char last_key[128];
    enum dcs_event_type last_type;
};

static void on_watch(struct dcs *d, int status, void *payload)
{
    (void)d;
    struct seen *s = payload;
    s->calls++;
    s->status = status;
}

static void on_event(const struct dcs_event *ev, void *payload)
{
    struct seen *s = payload;
    s->events++;
    snprintf(s->last_key, sizeof(s->last_key), "%s", ev->kv.key);
    s->last_type = ev->type;
}

static void test_watch(void **state)
{
    (void)state;
    struct clock c = {0};
    struct dcs *d = open_mem(&c);
    struct rv_error err;
    struct seen s = {0};
    uint64_t id, sess;

    put_ok(d, "/clusters/p/b/state", "1", 0);
    uint64_t after = dcs_revision(d);
    assert_int_equal(dcs_changes(d, "/clusters/p/b/", after, NULL, NULL), 0);
    assert_int_equal(dcs_watch_add(&id, d, "/clusters/p/b/", after, 1000, on_watch, &s, &err), 0);
    put_ok(d, "/clusters/p/other/state", "1", 0);
    assert_int_equal(s.calls, 0);
    assert_int_equal(dcs_session_grant(&sess, d, 1000, "", &err), 0);
    put_ok(d, "/clusters/p/b/nodes/n1", "{}", sess);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 0);
    assert_int_equal(dcs_changes(d, "/clusters/p/b/", after, on_event, &s), 1);
    assert_string_equal(s.last_key, "/clusters/p/b/nodes/n1");

    /* a delete by expiry wakes a watcher too */
    after = dcs_revision(d);
    assert_int_equal(dcs_watch_add(&id, d, "/clusters/p/b/nodes/", after, 5000, on_watch, &s, &err),
                     0);
    dcs_tick(d, 1000);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.status, 0);
    s.events = 0;
    assert_int_equal(dcs_changes(d, "/clusters/p/b/nodes/", after, on_event, &s), 1);
    assert_int_equal(s.last_type, DCS_EVENT_DELETE);

    /* deadline and cancel */
    assert_int_equal(dcs_watch_add(&id, d, "/q/", dcs_revision(d), 2000, on_watch, &s, &err), 0);
    dcs_tick(d, 1999);
    assert_int_equal(s.calls, 2);
    dcs_tick(d, 2000);
    assert_int_equal(s.calls, 3);
    assert_int_equal(s.status, RV_ETIMEOUT);
    assert_int_equal(dcs_watch_add(&id, d, "/q/", dcs_revision(d), 9000, on_watch, &s, &err), 0);
    dcs_watch_cancel(d, id);
    assert_int_equal(s.calls, 4);
    assert_int_equal(s.status, RV_ECANCELED);

    /* the ring keeps the newest events; older revisions must re-read */
    uint64_t start = dcs_revision(d);
    for (int i = 0; i < RV_DCS_HISTORY_MAX + 10; i++)
        put_ok(d, "/clusters/p/b/state", "2", 0);
    assert_int_equal(dcs_changes(d, "/", start, NULL, NULL), RV_ESTALE);
    assert_int_equal(dcs_changes(d, "/", dcs_revision(d) - 5, NULL, NULL), 5);
    assert_int_equal(dcs_changes(d, "/", dcs_revision(d) - RV_DCS_HISTORY_MAX, NULL, NULL),
                     RV_DCS_HISTORY_MAX);
    assert_int_equal(dcs_changes(d, "/", dcs_revision(d) + 1, NULL, NULL), RV_ESTALE);

    /* the number of watchers is bounded */
    uint64_t ids[RV_DCS_WATCHERS_MAX];
    struct seen many = {0};
    for (int i = 0; i < RV_DCS_WATCHERS_MAX; i++)
        assert_int_equal(
            dcs_watch_add(&ids[i], d, "/z/", dcs_revision(d), 9000, on_watch, &many, &err), 0);
    assert_int_equal(dcs_watch_add(&id, d, "/z/", dcs_revision(d), 9000, on_watch, &many, &err),
                     RV_ELIMIT);
    assert_true(err.retryable);
    put_ok(d, "/z/a", "1", 0); /* wakes them all */
    assert_int_equal(many.calls, RV_DCS_WATCHERS_MAX);

    /* a watcher still registered at free is cancelled */
    assert_int_equal(dcs_watch_add(&id, d, "/q/", dcs_revision(d), 9000, on_watch, &s, &err), 0);
    dcs_free(d);
    assert_int_equal(s.calls, 5);
    assert_int_equal(s.status, RV_ECANCELED);
}

static void test_persistence(void **state)
{
    (void)state;
    char dir[] = "/tmp/reeve-dcs-XXXXXX";
    char path[256];
    struct clock c = {.now = 1000};
    struct dcs *d;
    struct rv_error err;
    uint64_t s, s_short;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/dcs.db", dir);
    if (dcs_open(&d, path, fake_clock, &c, &err) != 0)
        fail_msg("open: %s", err.msg);
    assert_int_equal(dcs_session_grant(&s, d, 10000, "p/b/n0", &err), 0);
    assert_int_equal(dcs_session_grant(&s_short, d, 1000, "", &err), 0);
    put_ok(d, "/clusters/p/b/leader", "\"n0\"", s);
    put_ok(d, "/clusters/p/b/state", "{\"a\":1}", 0);
    put_ok(d, "/clusters/p/b/state", "{\"a\":2}", 0);
    put_ok(d, "/clusters/p/b/gone", "1", 0);
    put_ok(d, "/tmp/short", "1", s_short);
    assert_true(dcs_durable_seq(d) < dcs_pending_seq(d));

    /* a failed write puts its changes back in the queue */
    struct dcs_batch *bf;
    assert_int_equal(dcs_batch_take(&bf, d), 0);
    assert_non_null(bf);
    put_ok(d, "/clusters/p/b/late", "1", 0);
    dcs_batch_done(d, bf, RV_EIO);
    assert_true(dcs_durable_seq(d) < dcs_pending_seq(d));

    /* an asynchronous-style batch: take, write, done */
    struct dcs_batch *b;
    assert_int_equal(dcs_batch_take(&b, d), 0);
    assert_non_null(b);
    struct dcs_batch *b2;
    assert_int_equal(dcs_batch_take(&b2, d), 0);
    assert_null(b2); /* one batch at a time */
    bool deleted;
    assert_int_equal(dcs_delete(&deleted, NULL, d, "/clusters/p/b/gone", &err), 0);
    assert_int_equal(dcs_batch_write(b, &err), 0);
    dcs_batch_done(d, b, 0);
    assert_true(dcs_durable_seq(d) < dcs_pending_seq(d)); /* the delete is still queued */
    dcs_tick(d, 2000);                                    /* s_short expires */
    assert_null(dcs_get(d, "/tmp/short"));
    assert_int_equal(dcs_flush(d, &err), 0);
    assert_int_equal(dcs_durable_seq(d), dcs_pending_seq(d));
    uint64_t rev = dcs_revision(d);
    dcs_free(d);

    /* a long outage: every original deadline has passed */
    c.now = 500000;
    if (dcs_open(&d, path, fake_clock, &c, &err) != 0)
        fail_msg("reopen: %s", err.msg);
    assert_int_equal(dcs_revision(d), rev);
    const struct dcs_kv *kv = dcs_get(d, "/clusters/p/b/leader");
    assert_non_null(kv);
    assert_string_equal(kv->value, "\"n0\"");
    assert_int_equal(kv->session, s);
    kv = dcs_get(d, "/clusters/p/b/state");
    assert_non_null(kv);
    assert_string_equal(kv->value, "{\"a\":2}");
    assert_int_equal(kv->version, 2);
    assert_null(dcs_get(d, "/clusters/p/b/gone"));
    assert_null(dcs_get(d, "/tmp/short"));
    assert_non_null(dcs_get(d, "/clusters/p/b/late"));
    const char *owner;
    int64_t ttl;
    assert_int_equal(dcs_session_info(&owner, &ttl, d, s), 0);
    assert_string_equal(owner, "p/b/n0");
    assert_int_equal(ttl, 10000);
    /* history does not survive: watchers from before must re-read */
    assert_int_equal(dcs_changes(d, "/", rev - 1, NULL, NULL), RV_ESTALE);
    assert_int_equal(dcs_changes(d, "/", rev, NULL, NULL), 0);

    /* grace: a full TTL from the reopen, then expiry */
    dcs_tick(d, 500000 + 9999);
    assert_non_null(dcs_get(d, "/clusters/p/b/leader"));
    c.now = 505000;
    assert_int_equal(dcs_session_keepalive(d, s, &err), 0); /* the agent reconnected */
    dcs_tick(d, 514999);
    assert_non_null(dcs_get(d, "/clusters/p/b/leader"));
    dcs_tick(d, 515000);
    assert_null(dcs_get(d, "/clusters/p/b/leader"));
    uint64_t s3;
    assert_int_equal(dcs_session_grant(&s3, d, 1000, "", &err), 0);
    assert_true(s3 > s_short); /* ids are never reused */
    assert_int_equal(dcs_flush(d, &err), 0);
    dcs_free(d);

    if (dcs_open(&d, path, fake_clock, &c, &err) != 0)
        fail_msg("reopen: %s", err.msg);
    assert_null(dcs_get(d, "/clusters/p/b/leader"));
    assert_int_equal(dcs_session_info(NULL, NULL, d, s), RV_ENOTFOUND);
    dcs_free(d);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revisions),   cmocka_unit_test(test_session_expiry),
        cmocka_unit_test(test_lock),        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_persistence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
