/* test_serve.c - `reeve serve` end to end, in-process: the loop runs in a
 * thread against a file:// repository made with git in a temp dir and
 * tests/fakeforge/fakeforge.py as the forge (GitHub API).
 *
 * Proves what a user sees: a pull request opened (a signed webhook) gets
 * reeve/validate and reeve/plan on its head commit with links to its plan
 * page; a bad signature is refused with 401 and posts nothing; invalid specs
 * fail both statuses; /healthz, /metrics, /plans/<sha> (HTML, escaped, and
 * JSON, equal to `reeve plan --base --head --json`); a merge gets
 * reeve/apply pending; a restart re-posts nothing.
 *
 * Skipped (not failed) when git or python3 is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "backups.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "diag.h"
#include "log.h"
#include "schema.h"
#include "serve.h"
#include "source.h"

#include "../fakeforge/fakeforge_client.h"
#include "tutil.h"

#define SECRET "webhook-secret-for-tests"
#define WAIT_MS 30000

struct world {
    bool ok; /* set up: tests run */
    char dir[64];
    char origin[128];
    char work[128];
    struct fakeforge ff;
    struct config cfg;
    struct serve *s;
    pthread_t thread;
    bool running;
    char url[64]; /* http://127.0.0.1:PORT */
    char main_sha[41];
    char pr1_sha[41];
};

static struct world W;

/* The loop runs in a thread here (in `reeve serve` it is the main thread).
 * libh2o keeps recycled buffers in thread-local free lists that nothing
 * frees when a thread ends; LeakSanitizer reads the hook below in
 * sanitizer builds, and ignores it otherwise. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}

/* --- helpers --- */

/* First line of a command's output into out. */
static void sh_out(char *out, size_t size, const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (fgets(out, (int)size, p) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

static void commit_all(const char *msg)
{
    assert_int_equal(tu_sh("cd %s && git add -A && git -c user.email=t@example -c user.name=t "
                           "commit -qm '%s'",
                           W.work, msg),
                     0);
}

static void head_sha(char out[41])
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "git -C %s rev-parse HEAD", W.work);
    sh_out(out, 41, cmd);
    assert_int_equal(strlen(out), 40);
}

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", W.work, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct resp {
    long status;
    struct buf body;
    char content_type[128];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    return buf_append(ud, data, size * nmemb) == 0 ? size * nmemb : 0;
}

static void http(struct resp *r, const char *method, const char *path, struct curl_slist *hdrs,
                 const char *body)
{
    char url[512];
    CURL *c = curl_easy_init();
    char *ct = NULL;
    memset(r, 0, sizeof(*r));
    buf_init(&r->body);
    snprintf(url, sizeof(url), "%s%s", W.url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->content_type, sizeof(r->content_type), "%s", ct ? ct : "");
    curl_easy_cleanup(c);
}

static const char *body_of(struct resp *r)
{
    return r->body.data ? r->body.data : "";
}

/* POST a GitHub pull_request event; sign with secret (NULL: a wrong one). */
static long send_pr_event(int number, const char *action, const char *sha, const char *delivery,
                          const char *secret)
{
    char body[1024], hdr[128], sig[CRYPTO_SHA256_HEX_SIZE], dhdr[128];
    uint8_t mac[CRYPTO_SHA256_LEN];
    struct resp r;
    snprintf(body, sizeof(body),
             "{\"action\":\"%s\",\"number\":%d,\"pull_request\":{\"number\":%d,\"merged\":false,"
             "\"head\":{\"sha\":\"%s\",\"ref\":\"feature-%d\"},\"base\":{\"ref\":\"main\"}},"
             "\"repository\":{\"full_name\":\"acme/specs\",\"id\":7}}",
             action, number, number, sha, number);
    const char *key = secret ? secret : "not-the-secret";
    assert_int_equal(crypto_hmac_sha256(mac, key, strlen(key), body, strlen(body)), 0);
    assert_int_equal(crypto_hex_encode(sig, sizeof(sig), mac, sizeof(mac)), 0);
    snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: sha256=%s", sig);
    snprintf(dhdr, sizeof(dhdr), "X-GitHub-Delivery: %s", delivery);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "X-GitHub-Event: pull_request");
    h = curl_slist_append(h, dhdr);
    h = curl_slist_append(h, hdr);
    http(&r, "POST", "/hooks/github", h, body);
    curl_slist_free_all(h);
    long status = r.status;
    buf_release(&r.body);
    return status;
}

static long send_push_event(const char *before, const char *after, const char *delivery)
{
    char body[1024], hdr[128], sig[CRYPTO_SHA256_HEX_SIZE], dhdr[128];
    uint8_t mac[CRYPTO_SHA256_LEN];
    struct resp r;
    snprintf(body, sizeof(body),
             "{\"ref\":\"refs/heads/main\",\"before\":\"%s\",\"after\":\"%s\",\"created\":false,"
             "\"deleted\":false,\"repository\":{\"full_name\":\"acme/specs\",\"id\":7}}",
             before, after);
    assert_int_equal(crypto_hmac_sha256(mac, SECRET, strlen(SECRET), body, strlen(body)), 0);
    assert_int_equal(crypto_hex_encode(sig, sizeof(sig), mac, sizeof(mac)), 0);
    snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: sha256=%s", sig);
    snprintf(dhdr, sizeof(dhdr), "X-GitHub-Delivery: %s", delivery);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "X-GitHub-Event: push");
    h = curl_slist_append(h, dhdr);
    h = curl_slist_append(h, hdr);
    http(&r, "POST", "/hooks/github", h, body);
    curl_slist_free_all(h);
    long status = r.status;
    buf_release(&r.body);
    return status;
}

/* The status the fake forge holds for (sha, context), newest; NULL if none.
 * A new reference. */
static json_t *status_of(const char *sha, const char *context)
{
    json_t *list = fakeforge_list(&W.ff, "statuses"), *found = NULL;
    size_t i;
    json_t *st;
    json_array_foreach(list, i, st)
    {
        if (strcmp(json_string_value(json_object_get(st, "sha")), sha) == 0 &&
            strcmp(json_string_value(json_object_get(st, "context")), context) == 0) {
            json_decref(found);
            found = json_incref(st);
        }
    }
    json_decref(list);
    return found;
}

static size_t status_count(void)
{
    json_t *list = fakeforge_list(&W.ff, "statuses");
    size_t n = json_array_size(list);
    json_decref(list);
    return n;
}

static json_t *wait_status(const char *sha, const char *context)
{
    uint64_t until = now_ms() + WAIT_MS;
    json_t *st;
    while ((st = status_of(sha, context)) == NULL && now_ms() < until)
        fakeforge_sleep_ms(20);
    if (st == NULL)
        fail_msg("no status '%s' on %s within %d ms", context, sha, WAIT_MS);
    return st;
}

static void expect_status(const char *sha, const char *context, const char *state,
                          const char *description)
{
    char want_url[256];
    json_t *st = wait_status(sha, context);
    snprintf(want_url, sizeof(want_url), "%s/plans/%s", W.url, sha);
    assert_string_equal(json_string_value(json_object_get(st, "state")), state);
    assert_string_equal(json_string_value(json_object_get(st, "description")), description);
    assert_string_equal(json_string_value(json_object_get(st, "target_url")), want_url);
    json_decref(st);
}

static void *run_loop(void *arg)
{
    (void)arg;
    serve_run(W.s);
    return NULL;
}

static void start_server(void)
{
    struct serve_options opt = {.handle_signals = false};
    struct rv_error err = {0};
    if (serve_new(&W.s, &W.cfg, &opt, &err) != 0)
        fail_msg("serve_new: %s", err.msg);
    snprintf(W.url, sizeof(W.url), "http://127.0.0.1:%u", (unsigned)serve_port(W.s));
    assert_string_equal(serve_public_url(W.s), W.url);
    assert_int_equal(pthread_create(&W.thread, NULL, run_loop, NULL), 0);
    W.running = true;
}

static void stop_server(void)
{
    if (!W.running)
        return;
    serve_stop(W.s);
    pthread_join(W.thread, NULL);
    serve_free(W.s);
    W.s = NULL;
    W.running = false;
}

/* --- set-up --- */

static int group_setup(void **state)
{
    struct diag_list d;
    struct rv_error err = {0};
    char cfg_path[256], yaml[2048];
    const char *src = getenv("REEVE_SOURCE_DIR");
    (void)state;

    memset(&W, 0, sizeof(W));
    log_set_level(getenv("REEVE_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR);
    if (src == NULL || tu_sh("git --version >/dev/null 2>&1") != 0 ||
        tu_sh("python3 --version >/dev/null 2>&1") != 0)
        return 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (schema_get(SCHEMA_CLUSTER, &err) == NULL || schema_get(SCHEMA_CLUSTER_TF, &err) == NULL ||
        schema_get(SCHEMA_POLICY, &err) == NULL || source_global_init(0, &err) != 0)
        return -1;
    if (fakeforge_start(&W.ff, "github", "T", "--repo", "acme/specs", NULL) != 0)
        return 0;

    snprintf(W.dir, sizeof(W.dir), "/tmp/rv-serve-XXXXXX");
    if (mkdtemp(W.dir) == NULL)
        return -1;
    snprintf(W.origin, sizeof(W.origin), "%s/origin.git", W.dir);
    snprintf(W.work, sizeof(W.work), "%s/work", W.dir);
    if (tu_sh("git init -q --bare -b main %s && git init -q -b main %s && cp -r "
              "%s/examples/quickstart/clusters %s/examples/quickstart/policies %s/ && cd %s && "
              "git add -A && git -c user.email=t@example -c user.name=t commit -qm init && "
              "git push -q %s main",
              W.origin, W.work, src, src, W.work, W.work, W.origin) != 0)
        return -1;
    setenv("RV_SERVE_TEST_TOKEN", "T", 1);
    setenv("RV_SERVE_TEST_HOOK", SECRET, 1);
    snprintf(yaml, sizeof(yaml),
             "listen: 127.0.0.1:0\n"
             "dataDir: data\n"
             "log: {level: error}\n"
             "repository: {url: 'file://%s', branch: main, pollInterval: 0}\n"
             "forge:\n"
             "  kind: github\n"
             "  apiURL: '%s'\n"
             "  repository: acme/specs\n"
             "  tokenRef: env:RV_SERVE_TEST_TOKEN\n"
             "  webhookSecretRef: env:RV_SERVE_TEST_HOOK\n"
             "ticks: {base: 1, fast: 1}\n",
             W.origin, W.ff.url);
    snprintf(cfg_path, sizeof(cfg_path), "%s/reeve.yaml", W.dir);
    FILE *f = fopen(cfg_path, "w");
    if (f == NULL)
        return -1;
    fputs(yaml, f);
    fclose(f);
    diag_list_init(&d);
    config_init(&W.cfg);
    int rc = config_load(&W.cfg, cfg_path, &d, &err);
    diag_list_print(stderr, &d);
    diag_list_release(&d);
    if (rc != 0)
        return -1;
    log_set_level(getenv("REEVE_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR);
    W.ok = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stop_server();
    fakeforge_stop(&W.ff);
    config_release(&W.cfg);
    if (W.dir[0])
        tu_sh("rm -rf '%s'", W.dir);
    if (W.ok)
        source_global_shutdown();
    curl_global_cleanup();
    return 0;
}

#define NEED_WORLD()                                                                               \
    do {                                                                                           \
        if (!W.ok)                                                                                 \
            skip();                                                                                \
    } while (0)

/* --- tests, in order --- */

static void test_start_healthz_and_apply(void **state)
{
    (void)state;
    NEED_WORLD();
    head_sha(W.main_sha);
    start_server();
    /* the port is written to dataDir/port */
    char path[256], port[16];
    snprintf(path, sizeof(path), "cat %s/data/port", W.dir);
    sh_out(port, sizeof(port), path);
    assert_int_equal(atoi(port), (int)serve_port(W.s));

    expect_status(W.main_sha, "reeve/apply", "pending",
                  "waiting for execution; Plan: 44 to add, 0 to change, 0 to destroy.");
    struct resp r;
    http(&r, "GET", "/healthz", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_t *j = json_loads(body_of(&r), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_true(json_is_string(json_object_get(j, "last_fetch")));
    assert_true(json_is_string(json_object_get(j, "last_reconcile")));
    json_decref(j);
    buf_release(&r.body);
}

static void test_pr_opened_gets_validate_and_plan(void **state)
{
    (void)state;
    NEED_WORLD();
    assert_int_equal(tu_sh("cd %s && git checkout -q -b feature-1 && sed -i 's/instances: 2/"
                           "instances: 3/' clusters/identity/sessions.yaml",
                           W.work),
                     0);
    commit_all("scale sessions to 3");
    head_sha(W.pr1_sha);
    assert_int_equal(tu_sh("git -C %s push -q %s HEAD:refs/pull/1/head", W.work, W.origin), 0);
    uint64_t t0 = now_ms();
    assert_int_equal(send_pr_event(1, "opened", W.pr1_sha, "delivery-1", SECRET), 202);
    expect_status(W.pr1_sha, "reeve/validate", "success", "7 clusters valid");
    expect_status(W.pr1_sha, "reeve/plan", "success", "Plan: 2 to add, 0 to change, 0 to destroy.");
    print_message("webhook to reeve/plan received: %llu ms\n", (unsigned long long)(now_ms() - t0));
    /* never on another commit: only main's apply and this pull request's two */
    assert_int_equal(status_count(), 3);
}

static void test_bad_signature_posts_nothing(void **state)
{
    (void)state;
    NEED_WORLD();
    char sha[41];
    assert_int_equal(tu_sh("cd %s && git checkout -q main && git checkout -q -b feature-2 && "
                           "sed -i 's/instances: 3/instances: 2/' clusters/identity/accounts.yaml",
                           W.work),
                     0);
    commit_all("fewer accounts replicas");
    head_sha(sha);
    assert_int_equal(tu_sh("git -C %s push -q %s HEAD:refs/pull/2/head", W.work, W.origin), 0);
    size_t before = status_count();
    assert_int_equal(send_pr_event(2, "opened", sha, "delivery-2", NULL), 401);
    /* base ticks run meanwhile (every second) but do not fetch */
    fakeforge_sleep_ms(2500);
    assert_int_equal(status_count(), before);
    json_t *st = status_of(sha, "reeve/validate");
    assert_null(st);
}

static void test_invalid_pr_fails_both(void **state)
{
    (void)state;
    NEED_WORLD();
    char sha[41];
    assert_int_equal(tu_sh("cd %s && git checkout -q main && git checkout -q -b feature-3 && "
                           "sed -i 's/instances: 2/instances: 12/' clusters/identity/sessions.yaml",
                           W.work),
                     0);
    write_file("clusters/identity/evil.yaml",
               "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
               "metadata: {name: evil, namespace: identity}\n"
               "spec: {engine: postgresql, version: \"16\", provider: local, region: local-1,\n"
               "       instances: 1, \"<script>alert(1)</script>\": 1}\n");
    commit_all("break things");
    head_sha(sha);
    assert_int_equal(tu_sh("git -C %s push -q %s HEAD:refs/pull/3/head", W.work, W.origin), 0);
    assert_int_equal(send_pr_event(3, "opened", sha, "delivery-3", SECRET), 202);
    expect_status(sha, "reeve/validate", "failure",
                  "clusters/identity/evil.yaml:5:22: spec[\"<script>alert(1)</script>\"]: "
                  "unknown field '<script>alert(1)</script>' (+1 more)");
    expect_status(sha, "reeve/plan", "failure", "not planned: specs are invalid");

    /* the page shows every diagnostic, escaped */
    char path[128];
    struct resp r;
    snprintf(path, sizeof(path), "/plans/%s", sha);
    http(&r, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/html; charset=utf-8");
    assert_null(strstr(body_of(&r), "<script>"));
    assert_non_null(strstr(body_of(&r), "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(body_of(&r), "must be between 1 and 9 (got 12)"));
    assert_non_null(strstr(body_of(&r), "not planned: specs are invalid"));
    buf_release(&r.body);

    snprintf(path, sizeof(path), "/plans/%s?format=json", sha);
    http(&r, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(body_of(&r), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "sha")), sha);
    assert_string_equal(json_string_value(json_object_get(j, "base")), W.main_sha);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "pull_request");
    assert_int_equal(json_integer_value(json_object_get(j, "pull_request")), 3);
    json_t *v = json_object_get(j, "validation");
    assert_true(json_is_false(json_object_get(v, "valid")));
    assert_int_equal(json_integer_value(json_object_get(v, "errors")), 2);
    assert_int_equal(json_array_size(json_object_get(v, "diagnostics")), 2);
    assert_true(json_is_null(json_object_get(j, "plan")));
    json_decref(j);
    buf_release(&r.body);
}

static void test_plan_page_matches_reeve_plan(void **state)
{
    (void)state;
    NEED_WORLD();
    char path[128], cmd[1024];
    struct resp r;
    snprintf(path, sizeof(path), "/plans/%s?format=json", W.pr1_sha);
    http(&r, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_t *j = json_loads(body_of(&r), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "pull_request");
    assert_int_equal(json_integer_value(json_object_get(j, "pull_request")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "base")), W.main_sha);
    assert_true(json_is_true(json_object_get(json_object_get(j, "validation"), "valid")));

    /* The same plan as `reeve plan --base main --head <sha> --json`, which
     * reads the repository itself (and plans every cluster). */
    const char *bin = getenv("REEVE_BIN");
    char self[512] = "";
    if (bin == NULL) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 16);
        if (n > 0) {
            self[n] = '\0';
            char *slash = strrchr(self, '/');
            strcpy(slash + 1, "reeve");
            bin = self;
        }
    }
    if (bin != NULL && access(bin, X_OK) == 0) {
        snprintf(cmd, sizeof(cmd), "%s plan --repo %s --base main --head %s --json", bin, W.origin,
                 W.pr1_sha);
        FILE *p = popen(cmd, "r");
        json_t *want = json_loadf(p, 0, NULL);
        pclose(p);
        assert_non_null(want);
        assert_true(json_equal(want, json_object_get(j, "plan")));
        json_decref(want);
    } else {
        print_message("reeve binary not found; plan comparison skipped\n");
    }
    json_decref(j);
    buf_release(&r.body);

    snprintf(path, sizeof(path), "/plans/%s", W.pr1_sha);
    http(&r, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(body_of(&r), "Head of pull request #1 into <code>main</code>"));
    assert_non_null(strstr(body_of(&r), "<pre>planned against"));
    assert_non_null(strstr(body_of(&r), "+ provision_instance sessions-2"));
    assert_non_null(strstr(body_of(&r), "Plan: 2 to add, 0 to change, 0 to destroy.\n</pre>"));
    assert_non_null(strstr(body_of(&r), "href=\"?format=json\""));
    buf_release(&r.body);

    http(&r, "GET", "/plans/0123456789abcdef0123456789abcdef01234567", NULL, NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");
    assert_non_null(strstr(body_of(&r), "no plan for commit 0123456789abcdef"));
    buf_release(&r.body);
    http(&r, "GET", "/plans/not-a-sha", NULL, NULL);
    assert_int_equal(r.status, 404);
    buf_release(&r.body);
    snprintf(path, sizeof(path), "/plans/%s?format=yaml", W.pr1_sha);
    http(&r, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 400);
    buf_release(&r.body);
}

static void test_duplicate_delivery(void **state)
{
    (void)state;
    NEED_WORLD();
    assert_int_equal(send_pr_event(1, "opened", W.pr1_sha, "delivery-1", SECRET), 200);
}

static long long metric(const char *text, const char *name)
{
    const char *p = text;
    size_t n = strlen(name);
    while ((p = strstr(p, name)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atoll(p + n + 1);
        p += n;
    }
    fail_msg("metric '%s' missing", name);
    return -1;
}

static void test_metrics(void **state)
{
    (void)state;
    NEED_WORLD();
    struct resp r;
    http(&r, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    const char *t = body_of(&r);
    assert_non_null(strstr(r.content_type, "text/plain"));
    assert_true(metric(t, "reeve_reconcile_passes_total") >= 3);
    assert_true(metric(t, "reeve_reconcile_duration_seconds_count") >= 3);
    assert_non_null(strstr(t, "# TYPE reeve_reconcile_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "reeve_reconcile_duration_seconds_bucket{le=\"+Inf\"}"));
    assert_true(metric(t, "reeve_git_fetch_duration_seconds_count") >= 3);
    assert_int_equal(metric(t, "reeve_git_fetch_failures_total"), 0);
    /* main's apply, and validate + plan on pull requests 1, 2 (fetched along
     * with 3, though its own webhook was refused) and 3 */
    assert_int_equal(metric(t, "reeve_statuses_posted_total"), 7);
    assert_int_equal(metric(t, "reeve_statuses_failed_total"), 0);
    assert_int_equal(metric(t, "reeve_webhooks_total{result=\"accepted\"}"), 2);
    assert_int_equal(metric(t, "reeve_webhooks_total{result=\"rejected\"}"), 1);
    assert_int_equal(metric(t, "reeve_webhooks_total{result=\"duplicate\"}"), 1);
    assert_int_equal(metric(t, "reeve_webhooks_total{result=\"ignored\"}"), 0);
    assert_int_equal(metric(t, "reeve_webhooks_total{result=\"malformed\"}"), 0);
    assert_int_equal(metric(t, "reeve_clusters_desired"), 7);
    buf_release(&r.body);
}

/* GET /api/v1/backups/<id>: a record with its agent's log lines (put into
 * state.db the way POST /v1/agents/backups stores them), 404 for an
 * unknown id or a malformed path. */
static void test_backup_show_route(void **state)
{
    (void)state;
    NEED_WORLD();
    struct rv_error err = {0};
    struct backups *b = NULL;
    char db_path[512];
    size_t n = 0, nl = 0;
    struct resp r;
    snprintf(db_path, sizeof(db_path), "%s/state.db", W.cfg.data_dir);
    assert_int_equal(backups_open(&b, db_path, &W.cfg, &err), 0);
    json_t *body = json_loads(
        "{\"records\":[{\"backup_id\":\"20261121T080501Z-3fa9c2d1\",\"cluster\":\"shop/db\","
        "\"type\":\"full\",\"schedule\":\"manual\",\"status\":\"failed\","
        "\"error\":\"pg_basebackup: could not connect\","
        "\"started_at\":\"2026-11-21T08:05:01.000Z\"}],"
        "\"logs\":[{\"backup_id\":\"20261121T080501Z-3fa9c2d1\","
        "\"at\":\"2026-11-21T08:05:01.100Z\",\"level\":\"info\",\"line\":\"started (pg_basebackup, "
        "manual)\"},"
        "{\"backup_id\":\"20261121T080501Z-3fa9c2d1\",\"at\":\"2026-11-21T08:05:03.000Z\","
        "\"level\":\"error\",\"line\":\"pg_basebackup: could not connect\"}]}",
        0, NULL);
    assert_non_null(body);
    assert_int_equal(backups_ingest_logs(&n, &nl, b, "shop/db", body, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(nl, 2);
    json_decref(body);
    backups_free(b);

    http(&r, "GET", "/api/v1/backups/20261121T080501Z-3fa9c2d1", NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(body_of(&r), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "record"), "error")),
                        "pg_basebackup: could not connect");
    json_t *logs = json_object_get(j, "logs");
    assert_int_equal(json_array_size(logs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(logs, 0), "line")),
                        "started (pg_basebackup, manual)");
    assert_string_equal(json_string_value(json_object_get(json_array_get(logs, 1), "level")),
                        "error");
    json_decref(j);
    buf_release(&r.body);

    http(&r, "GET", "/api/v1/backups/20261121T999999Z-nope", NULL, NULL);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(body_of(&r), "no backup '20261121T999999Z-nope' is known to reeve"));
    buf_release(&r.body);
    http(&r, "GET", "/api/v1/backups/a%2Fb", NULL, NULL);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(body_of(&r), "GET /api/v1/backups/<id>"));
    buf_release(&r.body);
}

static void test_merge_gets_apply_pending(void **state)
{
    (void)state;
    NEED_WORLD();
    /* merge pull request 1 (fast-forward) */
    assert_int_equal(tu_sh("git -C %s push -q %s %s:refs/heads/main", W.work, W.origin, W.pr1_sha),
                     0);
    assert_int_equal(send_push_event(W.main_sha, W.pr1_sha, "delivery-push-1"), 202);
    /* the plan of the merge is what the pull request showed */
    expect_status(W.pr1_sha, "reeve/apply", "pending",
                  "waiting for execution; Plan: 2 to add, 0 to change, 0 to destroy.");
    /* the pull request's own statuses are still the latest on its head */
    expect_status(W.pr1_sha, "reeve/plan", "success", "Plan: 2 to add, 0 to change, 0 to destroy.");
    snprintf(W.main_sha, sizeof(W.main_sha), "%s", W.pr1_sha);
}

static void test_restart_reposts_nothing(void **state)
{
    (void)state;
    NEED_WORLD();
    size_t before = status_count();
    stop_server();
    start_server();
    struct resp r;
    uint64_t until = now_ms() + WAIT_MS;
    do {
        fakeforge_sleep_ms(50);
        http(&r, "GET", "/healthz", NULL, NULL);
        buf_release(&r.body);
    } while (r.status != 200 && now_ms() < until);
    assert_int_equal(r.status, 200);
    fakeforge_sleep_ms(2000); /* a fetch, base ticks and outbox runs later */
    assert_int_equal(status_count(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_healthz_and_apply),
        cmocka_unit_test(test_pr_opened_gets_validate_and_plan),
        cmocka_unit_test(test_bad_signature_posts_nothing),
        cmocka_unit_test(test_invalid_pr_fails_both),
        cmocka_unit_test(test_plan_page_matches_reeve_plan),
        cmocka_unit_test(test_duplicate_delivery),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_backup_show_route),
        cmocka_unit_test(test_merge_gets_apply_pending),
        cmocka_unit_test(test_restart_reposts_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
