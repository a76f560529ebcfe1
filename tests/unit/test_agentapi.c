/* test_agentapi.c - the agent API through real HTTP: httpd and the DCS run
 * on a libuv loop in the test's main thread, client threads talk to them
 * over 127.0.0.1 with libcurl, and the main thread checks what the clients
 * saw, what was logged and what reached the disk after the server closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <uv.h>

#include "agentapi.h"
#include "dcs.h"
#include "httpd.h"

struct reply {
    long status;
    char body[8192];
    size_t len;
    json_t *json;
};

struct harness {
    uv_loop_t loop;
    struct httpd *h;
    struct dcs *dcs;
    struct agentapi *api;
    uv_async_t done;
    pthread_t thread;
    void (*client)(struct harness *t);
    uint16_t port;
    bool closed;
    char dir[64];
    char db_path[128];
    char reg_a[AGENTAPI_TOKEN_HEX_SIZE]; /* p/billing billing-0 */
    char reg_b[AGENTAPI_TOKEN_HEX_SIZE]; /* p/billing billing-1 */
    char reg_c[AGENTAPI_TOKEN_HEX_SIZE]; /* q/other other-0 */
    char tok_a[AGENTAPI_TOKEN_HEX_SIZE]; /* agent tokens, filled by the client */
    char tok_b[AGENTAPI_TOKEN_HEX_SIZE];
    char tok_c[AGENTAPI_TOKEN_HEX_SIZE];
    int reports;
    char report_node[64];
    char report_role[16];
    int64_t report_lag;
    /* registration tokens issued on the loop thread at the client's request */
    uv_async_t issue;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool issued;
    char reg_again[AGENTAPI_TOKEN_HEX_SIZE];
    /* lock race */
    pthread_barrier_t barrier;
    int race_wins;
    char race_winner[32];
};

/* --- client side --- */

static size_t collect(char *data, size_t size, size_t n, void *userp)
{
    struct reply *r = userp;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    size_t take = len < room ? len : room;
    memcpy(r->body + r->len, data, take);
    r->len += take;
    r->body[r->len] = '\0';
    return len;
}

/* One request; token NULL sends no Authorization. The reply's JSON is
 * parsed when possible (release with reply_release). */
static void call(struct reply *r, struct harness *t, const char *method, const char *path,
                 const char *token, const char *body)
{
    char url[1024], auth[256];
    struct curl_slist *hl = NULL;
    CURL *c = curl_easy_init();
    assert_non_null(c);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)t->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        hl = curl_slist_append(hl, "Content-Type: application/json");
    }
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hl = curl_slist_append(hl, auth);
    }
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (curl_easy_perform(c) != CURLE_OK)
        r->status = -1;
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
}

static void reply_release(struct reply *r)
{
    json_decref(r->json);
    r->json = NULL;
}

static int64_t jint(const struct reply *r, const char *name)
{
    return (int64_t)json_integer_value(json_object_get(r->json, name));
}

static void expect(struct reply *r, long status)
{
    if (r->status != status)
        fail_msg("expected %ld, got %ld: %s", status, r->status, r->body);
}

static void do_register(struct harness *t, char out[AGENTAPI_TOKEN_HEX_SIZE], const char *reg,
                        const char *cluster, const char *node)
{
    struct reply r;
    char body[256];
    snprintf(body, sizeof(body),
             "{\"cluster\":\"%s\",\"node\":\"%s\",\"address\":\"127.0.0.9:5432\"}", cluster, node);
    call(&r, t, "POST", "/v1/agents/register", reg, body);
    expect(&r, 200);
    const char *tok = json_string_value(json_object_get(r.json, "agent_token"));
    assert_non_null(tok);
    assert_int_equal(strlen(tok), 64);
    snprintf(out, AGENTAPI_TOKEN_HEX_SIZE, "%s", tok);
    reply_release(&r);
}

static uint64_t grant(struct harness *t, const char *tok)
{
    struct reply r;
    call(&r, t, "POST", "/v1/dcs/session", tok, "{\"ttl_ms\":5000}");
    expect(&r, 200);
    uint64_t id = (uint64_t)jint(&r, "id");
    assert_true(id > 0);
    reply_release(&r);
    return id;
}

/* Count rows in the database file through a connection of the test's own
 * (as another process would see it); like, when not NULL, is bound to the
 * query's one parameter as '%like%'. */
static int db_row_count(const char *path, const char *sql, const char *like)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char pattern[128];
    int n = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (like != NULL) {
        snprintf(pattern, sizeof(pattern), "%%%s%%", like);
        sqlite3_bind_text(st, 1, pattern, -1, SQLITE_TRANSIENT);
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

struct racer {
    struct harness *t;
    const char *tok;
    const char *name;
    uint64_t session;
    bool won;
    long status;
};

static void *race_main(void *arg)
{
    struct racer *rc = arg;
    struct reply r;
    char body[512];
    snprintf(body, sizeof(body),
             "{\"compare\":[{\"key\":\"/clusters/p/billing/leader\",\"exists\":false}],"
             "\"success\":[{\"put\":{\"key\":\"/clusters/p/billing/leader\","
             "\"value\":{\"node\":\"%s\"},\"session\":%llu}}]}",
             rc->name, (unsigned long long)rc->session);
    pthread_barrier_wait(&rc->t->barrier);
    call(&r, rc->t, "POST", "/v1/dcs/txn", rc->tok, body);
    rc->status = r.status;
    rc->won = json_is_true(json_object_get(r.json, "succeeded"));
    reply_release(&r);
    return NULL;
}

struct watcher {
    struct harness *t;
    char path[512];
    struct reply r;
    double seconds;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    double t0 = now_s();
    call(&w->r, w->t, "GET", w->path, w->t->tok_a, NULL);
    w->seconds = now_s() - t0;
    return NULL;
}

static void issue_again(struct harness *t);

static void flow(struct harness *t)
{
    struct reply r;
    char path[512];

    /* registration: bad token, wrong node, success, reuse */
    call(&r, t, "POST", "/v1/agents/register",
         "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
         "{\"cluster\":\"p/billing\",\"node\":\"billing-0\",\"address\":\"127.0.0.9:5432\"}");
    expect(&r, 401);
    reply_release(&r);
    call(&r, t, "POST", "/v1/agents/register", NULL, "{}");
    expect(&r, 401);
    reply_release(&r);
    call(&r, t, "POST", "/v1/agents/register", t->reg_a,
         "{\"cluster\":\"p/billing\",\"node\":\"billing-1\",\"address\":\"127.0.0.9:5432\"}");
    expect(&r, 403);
    reply_release(&r);
    call(&r, t, "POST", "/v1/agents/register", t->reg_a,
         "{\"cluster\":\"p/billing\",\"node\":\"billing-0\",\"address\":\"x\",\"extra\":1}");
    expect(&r, 400);
    assert_non_null(strstr(r.body, "extra"));
    reply_release(&r);
    do_register(t, t->tok_a, t->reg_a, "p/billing", "billing-0");
    call(&r, t, "POST", "/v1/agents/register", t->reg_a,
         "{\"cluster\":\"p/billing\",\"node\":\"billing-0\",\"address\":\"127.0.0.9:5432\"}");
    expect(&r, 401); /* single use */
    reply_release(&r);
    do_register(t, t->tok_b, t->reg_b, "p/billing", "billing-1");
    do_register(t, t->tok_c, t->reg_c, "q/other", "other-0");
    assert_string_not_equal(t->tok_a, t->tok_b);

    /* authentication */
    call(&r, t, "GET", "/v1/dcs/kv?key=/clusters/p/billing/leader", NULL, NULL);
    expect(&r, 401);
    reply_release(&r);
    call(&r, t, "GET", "/v1/dcs/kv?key=/clusters/p/billing/leader", t->reg_b, NULL);
    expect(&r, 401); /* a registration token is not an agent token */
    reply_release(&r);
    call(&r, t, "GET", "/v1/dcs/kv?key=/clusters/p/billing/leader", t->tok_a, NULL);
    expect(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "kvs")), 0);
    reply_release(&r);

    /* scope: other clusters and the reserved keys are out of reach */
    call(&r, t, "GET", "/v1/dcs/kv?key=/clusters/q/other/leader", t->tok_a, NULL);
    expect(&r, 403);
    reply_release(&r);
    call(&r, t, "GET", "/v1/dcs/kv?prefix=/clusters/p/billing", t->tok_a, NULL);
    expect(&r, 403); /* would also match /clusters/p/billing-x */
    reply_release(&r);
    call(&r, t, "GET", "/v1/dcs/kv?prefix=%2F_reeve%2F", t->tok_a, NULL);
    expect(&r, 403);
    reply_release(&r);
    call(&r, t, "PUT", "/v1/dcs/kv", t->tok_c,
         "{\"key\":\"/clusters/p/billing/leader\",\"value\":\"evil\"}");
    expect(&r, 403);
    reply_release(&r);
    call(&r, t, "GET", "/v1/dcs/watch?prefix=/clusters/q/&after=0", t->tok_a, NULL);
    expect(&r, 403);
    reply_release(&r);
    call(&r, t, "POST", "/v1/dcs/txn", t->tok_a,
         "{\"compare\":[{\"key\":\"/clusters/q/other/leader\",\"exists\":false}]}");
    expect(&r, 403);
    reply_release(&r);

    /* sessions: a node uses only its own */
    uint64_t sa = grant(t, t->tok_a);
    uint64_t sb = grant(t, t->tok_b);
    snprintf(path, sizeof(path), "/v1/dcs/session/%llu/keepalive", (unsigned long long)sa);
    call(&r, t, "POST", path, t->tok_b, NULL);
    expect(&r, 403);
    reply_release(&r);
    call(&r, t, "POST", path, t->tok_a, NULL);
    expect(&r, 200);
    reply_release(&r);
    call(&r, t, "POST", "/v1/dcs/session", t->tok_a, "{\"ttl_ms\":5}");
    expect(&r, 400);
    reply_release(&r);

    /* the lock race: both at once, exactly one wins */
    struct racer ra = {.t = t, .tok = t->tok_a, .name = "billing-0", .session = sa};
    struct racer rb = {.t = t, .tok = t->tok_b, .name = "billing-1", .session = sb};
    pthread_t th_a, th_b;
    assert_int_equal(pthread_barrier_init(&t->barrier, NULL, 2), 0);
    assert_int_equal(pthread_create(&th_a, NULL, race_main, &ra), 0);
    assert_int_equal(pthread_create(&th_b, NULL, race_main, &rb), 0);
    pthread_join(th_a, NULL);
    pthread_join(th_b, NULL);
    pthread_barrier_destroy(&t->barrier);
    assert_int_equal(ra.status, 200);
    assert_int_equal(rb.status, 200);
    assert_true(ra.won != rb.won);
    const char *winner = ra.won ? "billing-0" : "billing-1";
    const char *winner_tok = ra.won ? t->tok_a : t->tok_b;
    const char *loser_tok = ra.won ? t->tok_b : t->tok_a;
    snprintf(t->race_winner, sizeof(t->race_winner), "%s", winner);
    call(&r, t, "GET", "/v1/dcs/kv?key=%2Fclusters%2Fp%2Fbilling%2Fleader", t->tok_a, NULL);
    expect(&r, 200);
    json_t *kv = json_array_get(json_object_get(r.json, "kvs"), 0);
    assert_non_null(kv);
    assert_string_equal(json_string_value(json_object_get(json_object_get(kv, "value"), "node")),
                        winner);
    assert_int_equal(json_integer_value(json_object_get(kv, "session")), ra.won ? sa : sb);
    reply_release(&r);

    /* the winner was told only once the lock was on disk: read the file */
    assert_int_equal(db_row_count(t->db_path,
                                  "SELECT count(*) FROM dcs_keys WHERE key = "
                                  "'/clusters/p/billing/leader' AND value LIKE ?",
                                  winner),
                     1);
    assert_int_equal(db_row_count(t->db_path,
                                  "SELECT count(*) FROM dcs_keys WHERE key LIKE "
                                  "'/_reeve/agent-tokens/%'",
                                  NULL),
                     3);

    /* the loser cannot release the winner's lock; the value compare fails */
    snprintf(path, sizeof(path),
             "{\"compare\":[{\"key\":\"/clusters/p/billing/leader\",\"value\":{\"node\":\"%s\"}}],"
             "\"success\":[{\"delete\":{\"key\":\"/clusters/p/billing/leader\"}}]}",
             ra.won ? "billing-1" : "billing-0");
    call(&r, t, "POST", "/v1/dcs/txn", loser_tok, path);
    expect(&r, 200);
    assert_false(json_is_true(json_object_get(r.json, "succeeded")));
    reply_release(&r);
    /* nor attach the key to the winner's session */
    snprintf(path, sizeof(path),
             "{\"key\":\"/clusters/p/billing/leader\",\"value\":1,\"session\":%llu}",
             (unsigned long long)(ra.won ? sa : sb));
    call(&r, t, "PUT", "/v1/dcs/kv", loser_tok, path);
    expect(&r, 403);
    reply_release(&r);
    (void)winner_tok;

    /* long-poll: a watch is woken by a put */
    call(&r, t, "GET", "/v1/dcs/kv?prefix=/clusters/p/billing/", t->tok_a, NULL);
    expect(&r, 200);
    uint64_t rev = (uint64_t)jint(&r, "revision");
    reply_release(&r);
    struct watcher w = {.t = t};
    snprintf(w.path, sizeof(w.path),
             "/v1/dcs/watch?prefix=/clusters/p/billing/&after=%llu&timeout_ms=10000",
             (unsigned long long)rev);
    pthread_t th_w;
    assert_int_equal(pthread_create(&th_w, NULL, watch_main, &w), 0);
    usleep(300 * 1000);
    call(&r, t, "PUT", "/v1/dcs/kv", t->tok_b,
         "{\"key\":\"/clusters/p/billing/state\",\"value\":{\"phase\":\"ready\"}}");
    expect(&r, 200);
    assert_int_equal(jint(&r, "revision"), (int64_t)rev + 1);
    reply_release(&r);
    pthread_join(th_w, NULL);
    expect(&w.r, 200);
    assert_true(w.seconds < 5.0);
    json_t *events = json_object_get(w.r.json, "events");
    assert_int_equal(json_array_size(events), 1);
    json_t *ev = json_array_get(events, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "put");
    assert_string_equal(json_string_value(json_object_get(ev, "key")), "/clusters/p/billing/state");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "value"), "phase")),
                        "ready");
    reply_release(&w.r);

    /* a watch with nothing to see times out empty; a future revision is 410 */
    snprintf(path, sizeof(path),
             "/v1/dcs/watch?prefix=/clusters/p/billing/&after=%llu&timeout_ms=200",
             (unsigned long long)(rev + 1));
    call(&r, t, "GET", path, t->tok_a, NULL);
    expect(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "events")), 0);
    reply_release(&r);
    snprintf(path, sizeof(path), "/v1/dcs/watch?prefix=/clusters/p/billing/&after=%llu",
             (unsigned long long)(rev + 1000));
    call(&r, t, "GET", path, t->tok_a, NULL);
    expect(&r, 410);
    assert_true(json_is_true(json_object_get(r.json, "compacted")));
    reply_release(&r);
    call(&r, t, "GET", "/v1/dcs/watch?prefix=/clusters/p/billing/&after=1&timeout_ms=999999",
         t->tok_a, NULL);
    expect(&r, 400);
    reply_release(&r);

    /* delete */
    call(&r, t, "DELETE", "/v1/dcs/kv?key=/clusters/p/billing/state", t->tok_a, NULL);
    expect(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "deleted")));
    reply_release(&r);

    /* value compares are on canonical JSON: member order does not matter */
    call(&r, t, "PUT", "/v1/dcs/kv", t->tok_c,
         "{\"key\":\"/clusters/q/other/state\",\"value\":{\"b\":1,\"a\":[true,null]}}");
    expect(&r, 200);
    reply_release(&r);
    call(&r, t, "POST", "/v1/dcs/txn", t->tok_c,
         "{\"compare\":[{\"key\":\"/clusters/q/other/state\",\"value\":{\"a\":[true,null],"
         "\"b\":1}}],\"success\":[{\"delete\":{\"key\":\"/clusters/q/other/state\"}}]}");
    expect(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "succeeded")));
    reply_release(&r);
    call(&r, t, "POST", "/v1/dcs/txn", t->tok_c,
         "{\"compare\":[{\"key\":\"/clusters/q/other/x\","
         "\"exists\":true,\"session\":1}]}");
    expect(&r, 400);
    reply_release(&r);

    /* session expiry through the server's timer deletes attached keys */
    uint64_t sc;
    call(&r, t, "POST", "/v1/dcs/session", t->tok_c, "{\"ttl_ms\":1000}");
    expect(&r, 200);
    sc = (uint64_t)jint(&r, "id");
    reply_release(&r);
    snprintf(path, sizeof(path),
             "{\"key\":\"/clusters/q/other/nodes/other-0\",\"value\":{},\"session\":%llu}",
             (unsigned long long)sc);
    call(&r, t, "PUT", "/v1/dcs/kv", t->tok_c, path);
    expect(&r, 200);
    reply_release(&r);
    usleep(1500 * 1000);
    call(&r, t, "GET", "/v1/dcs/kv?prefix=/clusters/q/other/nodes/", t->tok_c, NULL);
    expect(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "kvs")), 0);
    reply_release(&r);
    snprintf(path, sizeof(path), "/v1/dcs/session/%llu/keepalive", (unsigned long long)sc);
    call(&r, t, "POST", path, t->tok_c, NULL);
    expect(&r, 404);
    reply_release(&r);

    /* body cap */
    char *big = malloc(RV_AGENTAPI_BODY_MAX + 64);
    assert_non_null(big);
    memset(big, ' ', RV_AGENTAPI_BODY_MAX + 63);
    big[0] = '{';
    big[RV_AGENTAPI_BODY_MAX + 62] = '}';
    big[RV_AGENTAPI_BODY_MAX + 63] = '\0';
    call(&r, t, "PUT", "/v1/dcs/kv", t->tok_c, big);
    expect(&r, 413);
    reply_release(&r);
    free(big);

    /* registering a node again revokes its previous agent token */
    char old_b[AGENTAPI_TOKEN_HEX_SIZE];
    snprintf(old_b, sizeof(old_b), "%s", t->tok_b);
    issue_again(t);
    do_register(t, t->tok_b, t->reg_again, "p/billing", "billing-1");
    call(&r, t, "GET", "/v1/dcs/kv?prefix=/clusters/p/billing/", old_b, NULL);
    expect(&r, 401);
    reply_release(&r);
    call(&r, t, "GET", "/v1/dcs/kv?prefix=/clusters/p/billing/", t->tok_b, NULL);
    expect(&r, 200);
    reply_release(&r);

    /* reports: strict validation, rejections logged with the node */
    call(&r, t, "POST", "/v1/agents/report", t->tok_a,
         "{\"role\":\"primary\",\"healthy\":\"yes\"}");
    expect(&r, 400);
    assert_non_null(strstr(r.body, "healthy"));
    reply_release(&r);
    call(&r, t, "POST", "/v1/agents/report", t->tok_a,
         "{\"role\":\"primary\",\"healthy\":true,\"lag\":3}");
    expect(&r, 400);
    assert_non_null(strstr(r.body, "unknown field 'lag'"));
    reply_release(&r);
    call(&r, t, "POST", "/v1/agents/report", t->tok_a, "{\"role\":\"leader\",\"healthy\":true}");
    expect(&r, 400);
    assert_non_null(strstr(r.body, "role"));
    reply_release(&r);
    call(&r, t, "POST", "/v1/agents/report", t->tok_a, "[1,2");
    expect(&r, 400);
    reply_release(&r);
    call(&r, t, "POST", "/v1/agents/report", t->tok_a,
         "{\"role\":\"replica\",\"healthy\":true,\"version\":\"15.4\",\"lag_bytes\":42,"
         "\"timeline\":3,\"engine\":\"postgresql\"}");
    expect(&r, 200);
    reply_release(&r);
}

/* --- server side --- */

static void on_report(const struct agentapi_report *rep, void *payload)
{
    struct harness *t = payload;
    t->reports++;
    snprintf(t->report_node, sizeof(t->report_node), "%s/%s/%s", rep->namespace_, rep->cluster,
             rep->node);
    snprintf(t->report_role, sizeof(t->report_role), "%s", rep->role);
    t->report_lag = rep->lag_bytes;
}

static void on_httpd_closed(void *payload)
{
    struct harness *t = payload;
    t->closed = true;
}

static void on_api_closed(void *payload)
{
    struct harness *t = payload;
    httpd_close(t->h, on_httpd_closed, t);
}

static void on_done(uv_async_t *a)
{
    struct harness *t = a->data;
    agentapi_close(t->api, on_api_closed, t);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&t->issue, NULL);
}

static void on_issue(uv_async_t *as)
{
    struct harness *t = as->data;
    struct rv_error err;
    int rc = agentapi_registration_issue(t->reg_again, t->dcs, "p", "billing", "billing-1", &err);
    pthread_mutex_lock(&t->mu);
    if (rc != 0)
        t->reg_again[0] = '\0';
    t->issued = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Client side: have the loop issue a new registration token for billing-1. */
static void issue_again(struct harness *t)
{
    pthread_mutex_lock(&t->mu);
    t->issued = false;
    pthread_mutex_unlock(&t->mu);
    uv_async_send(&t->issue);
    pthread_mutex_lock(&t->mu);
    while (!t->issued)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    assert_int_equal(strlen(t->reg_again), 64);
}

static void *client_main(void *arg)
{
    struct harness *t = arg;
    t->client(t);
    uv_async_send(&t->done);
    return NULL;
}

static int64_t loop_clock(void *payload)
{
    return (int64_t)uv_now(payload);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    static const size_t cap = 1 << 20;
    char *s = calloc(1, cap);
    assert_non_null(f);
    assert_non_null(s);
    size_t n = fread(s, 1, cap - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    bool found = false;
    if (f == NULL)
        return false;
    size_t cap = 1 << 16, len = 0;
    char *data = malloc(cap);
    assert_non_null(data);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            data = realloc(data, cap);
            assert_non_null(data);
        }
        size_t n = fread(data + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    found = memmem(data, len, needle, strlen(needle)) != NULL;
    free(data);
    return found;
}

static void test_agent_api(void **state)
{
    (void)state;
    struct harness *t = calloc(1, sizeof(*t));
    struct rv_error err;
    struct httpd_config cfg = {.listen = "127.0.0.1:0"};
    char log_path[160];
    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "/tmp/reeve-agentapi-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->db_path, sizeof(t->db_path), "%s/dcs.db", t->dir);
    snprintf(log_path, sizeof(log_path), "%s/log", t->dir);

    assert_int_equal(uv_loop_init(&t->loop), 0);
    if (dcs_open(&t->dcs, t->db_path, loop_clock, &t->loop, &err) != 0)
        fail_msg("dcs_open: %s", err.msg);
    if (httpd_new(&t->h, &t->loop, &cfg, &err) != 0)
        fail_msg("httpd_new: %s", err.msg);
    t->port = httpd_port(t->h);
    if (agentapi_new(&t->api, &t->loop, t->h, t->dcs, on_report, t, &err) != 0)
        fail_msg("agentapi_new: %s", err.msg);
    assert_int_equal(
        agentapi_registration_issue(t->reg_a, t->dcs, "p", "billing", "billing-0", &err), 0);
    assert_int_equal(
        agentapi_registration_issue(t->reg_b, t->dcs, "p", "billing", "billing-1", &err), 0);
    /* issuing again for a node replaces its unused token */
    char stale[AGENTAPI_TOKEN_HEX_SIZE];
    assert_int_equal(agentapi_registration_issue(stale, t->dcs, "q", "other", "other-0", &err), 0);
    assert_int_equal(agentapi_registration_issue(t->reg_c, t->dcs, "q", "other", "other-0", &err),
                     0);
    assert_int_equal(agentapi_registration_issue(stale, t->dcs, "Q", "other", "x", &err),
                     RV_EINVAL);
    assert_int_equal(dcs_flush(t->dcs, &err), 0);

    /* capture the log (stderr); kept in t->dir when the test fails */
    printf("log: %s\n", log_path);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);

    t->client = flow;
    assert_int_equal(uv_async_init(&t->loop, &t->done, on_done), 0);
    t->done.data = t;
    assert_int_equal(uv_async_init(&t->loop, &t->issue, on_issue), 0);
    t->issue.data = t;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    assert_int_equal(pthread_create(&t->thread, NULL, client_main, t), 0);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    assert_true(t->closed);
    agentapi_free(t->api);
    assert_int_equal(uv_loop_close(&t->loop), 0);

    /* what the reconciler was handed */
    assert_int_equal(t->reports, 1);
    assert_string_equal(t->report_node, "p/billing/billing-0");
    assert_string_equal(t->report_role, "replica");
    assert_int_equal(t->report_lag, 42);

    /* what was logged: rejections with the node's identity, never a token */
    char *log = read_all(log_path);
    assert_non_null(strstr(log, "agent p/billing/billing-0 at 127.0.0.1:"));
    assert_non_null(strstr(log, "report rejected (400): report: field 'healthy'"));
    assert_non_null(strstr(log, "rejected (401)"));
    assert_non_null(strstr(log, "refused (403)"));
    assert_null(strstr(log, t->tok_a));
    assert_null(strstr(log, t->tok_b));
    assert_null(strstr(log, t->reg_a));
    free(log);
    dcs_free(t->dcs);

    /* durable: tokens (hashed) and the leader key survive a restart */
    if (dcs_open(&t->dcs, t->db_path, loop_clock, &t->loop, &err) != 0)
        fail_msg("reopen: %s", err.msg);
    const struct dcs_kv *leader = dcs_get(t->dcs, "/clusters/p/billing/leader");
    assert_non_null(leader);
    assert_non_null(strstr(leader->value, t->race_winner));
    dcs_free(t->dcs);
    /* no token in the clear anywhere on disk (database and its WAL) */
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", t->db_path);
    const char *secrets[] = {t->tok_a, t->tok_b, t->tok_c,    t->reg_a,
                             t->reg_b, t->reg_c, t->reg_again};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        assert_false(file_contains(t->db_path, secrets[i]));
        assert_false(file_contains(wal, secrets[i]));
    }

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
    free(t);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_api),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
