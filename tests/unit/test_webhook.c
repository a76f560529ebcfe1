/* test_webhook.c - reconciler/webhook: signatures and tokens, each forge's
 * push and pull/merge request payloads (trimmed from the shapes the forges
 * document), rejections, the dedup set, and the HTTP route end to end with
 * libcurl against lib/httpd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "httpd.h"
#include "webhook.h"

/* --- payloads --- */

#define SHA_A "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
#define SHA_B "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5"
#define SHA_C "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
#define SHA_M "95790bf891e76fee5e1747ab589903a6a1f80f22"
#define ZERO "0000000000000000000000000000000000000000"

static const char github_push[] =
    "{\"ref\":\"refs/heads/main\",\"before\":\"" SHA_A "\",\"after\":\"" SHA_B "\","
    "\"created\":false,\"deleted\":false,\"forced\":false,\"base_ref\":null,"
    "\"compare\":\"https://github.com/acme/db-specs/compare/6113728f27ae...59b20b8d5c6f\","
    "\"commits\":[{\"id\":\"" SHA_B "\",\"tree_id\":\"" SHA_C "\",\"distinct\":true,"
    "\"message\":\"billing: three instances\",\"timestamp\":\"2026-11-20T10:00:00+01:00\","
    "\"author\":{\"name\":\"Mona\",\"email\":\"mona@example.com\",\"username\":\"mona\"},"
    "\"added\":[],\"removed\":[],\"modified\":[\"clusters/payments/billing.yaml\"]}],"
    "\"head_commit\":{\"id\":\"" SHA_B "\",\"message\":\"billing: three instances\"},"
    "\"repository\":{\"id\":186853002,\"node_id\":\"R_kgDOLJ\",\"name\":\"db-specs\","
    "\"full_name\":\"acme/db-specs\",\"private\":true,\"owner\":{\"login\":\"acme\",\"id\":9},"
    "\"default_branch\":\"main\",\"master_branch\":\"main\"},"
    "\"pusher\":{\"name\":\"mona\",\"email\":\"mona@example.com\"},"
    "\"sender\":{\"login\":\"mona\",\"id\":583231,\"type\":\"User\"}}";

static const char github_branch_deleted[] =
    "{\"ref\":\"refs/heads/old\",\"before\":\"" SHA_A "\",\"after\":\"" ZERO "\","
    "\"created\":false,\"deleted\":true,\"commits\":[],\"head_commit\":null,"
    "\"repository\":{\"id\":186853002,\"full_name\":\"acme/db-specs\"}}";

#define GITHUB_PR(action, merged, merge_sha, extra)                                                \
    "{\"action\":\"" action "\",\"number\":42," extra "\"pull_request\":{"                         \
    "\"url\":\"https://api.github.com/repos/acme/db-specs/pulls/42\",\"id\":279147437,"            \
    "\"number\":42,\"state\":\"open\",\"locked\":false,\"title\":\"billing: 3 instances\","        \
    "\"user\":{\"login\":\"mona\",\"id\":583231},\"draft\":false,"                                 \
    "\"head\":{\"label\":\"acme:feature/billing-3\",\"ref\":\"feature/billing-3\","                \
    "\"sha\":\"" SHA_B "\",\"repo\":{\"id\":186853002,\"full_name\":\"acme/db-specs\"}},"          \
    "\"base\":{\"label\":\"acme:main\",\"ref\":\"main\",\"sha\":\"" SHA_A "\","                    \
    "\"repo\":{\"id\":186853002,\"full_name\":\"acme/db-specs\"}},"                                \
    "\"merged\":" merged ",\"merge_commit_sha\":" merge_sha "},"                                   \
    "\"repository\":{\"id\":186853002,\"full_name\":\"acme/db-specs\",\"private\":true},"          \
    "\"sender\":{\"login\":\"mona\",\"id\":583231}}"

static const char github_pr_opened[] = GITHUB_PR("opened", "false", "null", "");
static const char github_pr_sync[] = GITHUB_PR("synchronize", "false", "\"" SHA_C "\"",
                                               "\"before\":\"" SHA_A "\",\"after\":\"" SHA_B "\",");
static const char github_pr_merged[] = GITHUB_PR("closed", "true", "\"" SHA_M "\"", "");
static const char github_pr_closed[] = GITHUB_PR("closed", "false", "\"" SHA_C "\"", "");
static const char github_pr_labeled[] =
    GITHUB_PR("labeled", "false", "null", "\"label\":{\"name\":\"db\"},");
static const char github_pr_retargeted[] =
    GITHUB_PR("edited", "false", "null", "\"changes\":{\"base\":{\"ref\":{\"from\":\"dev\"}}},");
static const char github_pr_retitled[] =
    GITHUB_PR("edited", "false", "null", "\"changes\":{\"title\":{\"from\":\"x\"}},");

static const char gitea_push[] =
    "{\"ref\":\"refs/heads/main\",\"before\":\"" SHA_A "\",\"after\":\"" SHA_B "\","
    "\"compare_url\":\"https://git.example.com/acme/db-specs/compare/6113728f...59b20b8d\","
    "\"commits\":[{\"id\":\"" SHA_B "\",\"message\":\"billing: three instances\\n\","
    "\"url\":\"https://git.example.com/acme/db-specs/commit/" SHA_B "\","
    "\"author\":{\"name\":\"alice\",\"email\":\"alice@example.com\",\"username\":\"alice\"},"
    "\"added\":[],\"removed\":[],\"modified\":[\"clusters/payments/billing.yaml\"]}],"
    "\"total_commits\":1,\"head_commit\":{\"id\":\"" SHA_B "\"},"
    "\"repository\":{\"id\":3,\"owner\":{\"id\":2,\"login\":\"acme\",\"username\":\"acme\"},"
    "\"name\":\"db-specs\",\"full_name\":\"acme/db-specs\",\"private\":true,"
    "\"default_branch\":\"main\",\"html_url\":\"https://git.example.com/acme/db-specs\"},"
    "\"pusher\":{\"id\":5,\"login\":\"alice\"},\"sender\":{\"id\":5,\"login\":\"alice\"}}";

static const char gitea_pr_sync[] =
    "{\"action\":\"synchronized\",\"number\":7,\"pull_request\":{\"id\":11,\"number\":7,"
    "\"user\":{\"login\":\"alice\"},\"title\":\"analytics: mariadb 11\",\"state\":\"open\","
    "\"head\":{\"label\":\"analytics-11\",\"ref\":\"analytics-11\",\"sha\":\"" SHA_C "\","
    "\"repo_id\":3},\"base\":{\"label\":\"main\",\"ref\":\"main\",\"sha\":\"" SHA_A "\","
    "\"repo_id\":3},\"merged\":false,\"merged_at\":null,\"merge_commit_sha\":null},"
    "\"requested_reviewer\":null,"
    "\"repository\":{\"id\":3,\"name\":\"db-specs\",\"full_name\":\"acme/db-specs\"},"
    "\"sender\":{\"id\":5,\"login\":\"alice\"},\"commit_id\":\"\",\"review\":null}";

static const char gitea_pr_merged[] =
    "{\"action\":\"closed\",\"number\":7,\"pull_request\":{\"id\":11,\"number\":7,"
    "\"head\":{\"ref\":\"analytics-11\",\"sha\":\"" SHA_C "\"},"
    "\"base\":{\"ref\":\"main\",\"sha\":\"" SHA_A "\"},"
    "\"merged\":true,\"merge_commit_sha\":\"" SHA_M "\"},"
    "\"repository\":{\"id\":3,\"full_name\":\"acme/db-specs\"}}";

static const char gitlab_push[] =
    "{\"object_kind\":\"push\",\"event_name\":\"push\",\"before\":\"" SHA_M "\","
    "\"after\":\"" SHA_C "\",\"ref\":\"refs/heads/main\",\"ref_protected\":true,"
    "\"checkout_sha\":\"" SHA_C "\",\"user_id\":4,\"user_name\":\"John Smith\","
    "\"user_username\":\"jsmith\",\"project_id\":15,"
    "\"project\":{\"id\":15,\"name\":\"db-specs\",\"description\":\"\","
    "\"web_url\":\"https://gitlab.example.com/platform/dbaas/db-specs\","
    "\"path_with_namespace\":\"platform/dbaas/db-specs\",\"default_branch\":\"main\"},"
    "\"commits\":[{\"id\":\"" SHA_C "\",\"message\":\"billing: pitr on\\n\","
    "\"timestamp\":\"2026-11-20T10:00:00+00:00\",\"author\":{\"name\":\"John Smith\"},"
    "\"added\":[],\"modified\":[\"clusters/payments/billing.yaml\"],\"removed\":[]}],"
    "\"total_commits_count\":1,\"repository\":{\"name\":\"db-specs\","
    "\"url\":\"git@gitlab.example.com:platform/dbaas/db-specs.git\"}}";

static const char gitlab_tag_push[] =
    "{\"object_kind\":\"tag_push\",\"event_name\":\"tag_push\",\"before\":\"" ZERO "\","
    "\"after\":\"" SHA_C "\",\"ref\":\"refs/tags/v1.0.0\",\"checkout_sha\":\"" SHA_C "\","
    "\"project_id\":15,\"project\":{\"id\":15,\"path_with_namespace\":\"platform/dbaas/db-specs\"},"
    "\"commits\":[],\"total_commits_count\":0}";

#define GITLAB_MR(action, state, extra)                                                            \
    "{\"object_kind\":\"merge_request\",\"event_type\":\"merge_request\","                         \
    "\"user\":{\"id\":1,\"name\":\"Administrator\",\"username\":\"root\"},"                        \
    "\"project\":{\"id\":15,\"name\":\"db-specs\","                                                \
    "\"path_with_namespace\":\"platform/dbaas/db-specs\",\"default_branch\":\"main\"},"            \
    "\"object_attributes\":{\"id\":99,\"iid\":12,\"target_branch\":\"main\","                      \
    "\"source_branch\":\"billing-pitr\",\"source_project_id\":15,\"target_project_id\":15,"        \
    "\"state\":\"" state "\",\"merge_status\":\"can_be_merged\",\"title\":\"billing: pitr\","      \
    "\"last_commit\":{\"id\":\"" SHA_C "\",\"message\":\"billing: pitr\\n\","                      \
    "\"timestamp\":\"2026-11-20T10:00:00+00:00\"}," extra "\"action\":\"" action "\"},"            \
    "\"labels\":[],\"changes\":{},\"repository\":{\"name\":\"db-specs\"}}"

static const char gitlab_mr_open[] = GITLAB_MR("open", "opened", "\"merge_commit_sha\":null,");
static const char gitlab_mr_push[] = GITLAB_MR("update", "opened", "\"oldrev\":\"" SHA_A "\",");
static const char gitlab_mr_edit[] = GITLAB_MR("update", "opened", "");
static const char gitlab_mr_merge[] =
    GITLAB_MR("merge", "merged", "\"merge_commit_sha\":\"" SHA_M "\",");
static const char gitlab_mr_close[] = GITLAB_MR("close", "closed", "");
static const char gitlab_mr_approved[] = GITLAB_MR("approved", "opened", "");

/* --- header tables --- */

struct hdrs {
    const char *kv[16]; /* name, value, name, value, ..., NULL */
};

static const char *lookup(const char *name, void *payload)
{
    const struct hdrs *h = payload;
    for (size_t i = 0; h->kv[i] != NULL; i += 2)
        if (strcasecmp(h->kv[i], name) == 0)
            return h->kv[i + 1];
    return NULL;
}

static void sign(char out[80], const char *prefix, const char *secret, const char *body)
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    char hex[CRYPTO_SHA256_HEX_SIZE];
    assert_int_equal(crypto_hmac_sha256(mac, secret, strlen(secret), body, strlen(body)), 0);
    assert_int_equal(crypto_hex_encode(hex, sizeof(hex), mac, sizeof(mac)), 0);
    snprintf(out, 80, "%s%s", prefix, hex);
}

static int run(struct webhook_event *ev, enum webhook_forge forge, const char *secret,
               struct hdrs *h, const char *body, size_t len, struct rv_error *err)
{
    struct webhook_headers hd = {lookup, h};
    rv_error_clear(err);
    return webhook_verify_and_parse(ev, forge, secret, &hd, body, len, err);
}

static int github(struct webhook_event *ev, const char *event, const char *body,
                  struct rv_error *err)
{
    char sig[80];
    sign(sig, "sha256=", "s3cret", body);
    struct hdrs h = {{"X-GitHub-Event", event, "X-GitHub-Delivery",
                      "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-Hub-Signature-256", sig,
                      "Content-Type", "application/json", NULL}};
    return run(ev, WEBHOOK_FORGE_GITHUB, "s3cret", &h, body, strlen(body), err);
}

static int gitea(struct webhook_event *ev, const char *event, const char *body,
                 struct rv_error *err)
{
    char sig[80];
    sign(sig, "", "gitea-secret", body);
    struct hdrs h = {{"X-Gitea-Event", event, "X-Gitea-Delivery",
                      "c0b5b7d4-1b2a-4f3e-9a8b-7c6d5e4f3a2b", "X-Gitea-Signature", sig,
                      "Content-Type", "application/json", NULL}};
    return run(ev, WEBHOOK_FORGE_GITEA, "gitea-secret", &h, body, strlen(body), err);
}

static int gitlab(struct webhook_event *ev, const char *event, const char *body,
                  struct rv_error *err)
{
    struct hdrs h = {{"X-Gitlab-Event", event, "X-Gitlab-Token", "gl-token", "X-Gitlab-Event-UUID",
                      "13792a34-cac6-4fda-95a8-c58e00a3954e", "X-Gitlab-Instance",
                      "https://gitlab.example.com", "Content-Type", "application/json", NULL}};
    return run(ev, WEBHOOK_FORGE_GITLAB, "gl-token", &h, body, strlen(body), err);
}

/* --- verification --- */

static void test_github_documentation_example(void **state)
{
    (void)state;
    /* GitHub's "Validating webhook deliveries" example. The body is not
     * JSON, so a push with it passes verification and then fails parsing
     * (400, not 401); a ping is acknowledged without looking at the body. */
    const char *secret = "It's a Secret to Everybody";
    const char *body = "Hello, World!";
    const char *sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    char mine[80];
    struct webhook_event ev;
    struct rv_error err;

    sign(mine, "sha256=", secret, body);
    assert_string_equal(mine, sig);

    struct hdrs ping = {
        {"X-Hub-Signature-256", sig, "X-GitHub-Event", "ping", "X-GitHub-Delivery", "d1", NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, secret, &ping, body, 13, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
    assert_string_equal(ev.event, "ping");
    assert_string_equal(ev.delivery, "d1");
    assert_non_null(strstr(ev.ignored_reason, "event 'ping' is not used by reeve"));

    struct hdrs push = {{"X-Hub-Signature-256", sig, "X-GitHub-Event", "push", NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, secret, &push, body, 13, &err), RV_EPARSE);
    assert_non_null(strstr(err.msg, "not valid JSON"));

    /* the same headers with another secret, or another body */
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITHUB, "It's a secret to everybody", &ping, body, 13, &err),
        RV_EAUTH);
    assert_non_null(strstr(err.msg, "does not match the body"));
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, secret, &ping, "Hello, World?", 13, &err),
                     RV_EAUTH);
    assert_int_equal(webhook_http_status(RV_EAUTH), 401);
}

static void test_github_signature_rejections(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;
    const char *body = github_push;
    char good[80];
    sign(good, "sha256=", "s3cret", body);

    struct hdrs none = {{"X-GitHub-Event", "push", NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &none, body, strlen(body), &err),
                     RV_EAUTH);
    assert_non_null(strstr(err.msg, "missing header 'X-Hub-Signature-256'"));

    const char *bad_values[] = {
        good + 7, /* without "sha256=" */
        "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
        "sha256=",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",  /* 63 */
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", /* other body */
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    };
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        struct hdrs h = {{"X-GitHub-Event", "push", "X-Hub-Signature-256", bad_values[i], NULL}};
        assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &h, body, strlen(body), &err),
                         RV_EAUTH);
    }
    /* one flipped body byte */
    char *copy = strdup(body);
    copy[10] ^= 1;
    struct hdrs h = {{"X-GitHub-Event", "push", "X-Hub-Signature-256", good, NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &h, copy, strlen(copy), &err),
                     RV_EAUTH);
    free(copy);
    /* uppercase hex is the same signature */
    char upper[80];
    snprintf(upper, sizeof(upper), "sha256=");
    for (size_t i = 7; good[i] != '\0'; i++)
        upper[i] = (char)(good[i] >= 'a' && good[i] <= 'f' ? good[i] - 32 : good[i]);
    upper[strlen(good)] = '\0';
    struct hdrs hu = {{"X-GitHub-Event", "push", "X-Hub-Signature-256", upper, NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &hu, body, strlen(body), &err), 0);
    /* no secret configured is a configuration error, never a pass */
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "", &h, body, strlen(body), &err), RV_EINVAL);
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, NULL, &h, body, strlen(body), &err), RV_EINVAL);
}

/* --- parsing, per forge --- */

static void test_github_push(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;
    assert_int_equal(github(&ev, "push", github_push, &err), 0);
    assert_int_equal(ev.forge, WEBHOOK_FORGE_GITHUB);
    assert_int_equal(ev.kind, WEBHOOK_PUSH);
    assert_string_equal(ev.delivery, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_string_equal(ev.event, "push");
    assert_string_equal(ev.repo, "acme/db-specs");
    assert_int_equal(ev.repo_id, 186853002);
    assert_string_equal(ev.push.ref, "refs/heads/main");
    assert_string_equal(ev.push.before, SHA_A);
    assert_string_equal(ev.push.after, SHA_B);
    assert_false(ev.push.created);
    assert_false(ev.push.deleted);

    assert_int_equal(github(&ev, "push", github_branch_deleted, &err), 0);
    assert_string_equal(ev.push.ref, "refs/heads/old");
    assert_true(ev.push.deleted);
    assert_false(ev.push.created);
    assert_string_equal(ev.push.after, ZERO);
}

static void test_github_pull_request(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;

    assert_int_equal(github(&ev, "pull_request", github_pr_opened, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_PULL_REQUEST);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_OPENED);
    assert_int_equal(ev.pr.number, 42);
    assert_string_equal(ev.pr.head_sha, SHA_B);
    assert_string_equal(ev.pr.head_ref, "feature/billing-3");
    assert_string_equal(ev.pr.base_ref, "main");
    assert_false(ev.pr.merged);
    assert_string_equal(ev.pr.merge_sha, "");
    assert_string_equal(ev.repo, "acme/db-specs");

    assert_int_equal(github(&ev, "pull_request", github_pr_sync, &err), 0);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_SYNCHRONIZE);
    assert_string_equal(ev.pr.merge_sha, ""); /* the test-merge sha of an open PR is not kept */

    assert_int_equal(github(&ev, "pull_request", github_pr_merged, &err), 0);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_CLOSED);
    assert_true(ev.pr.merged);
    assert_string_equal(ev.pr.merge_sha, SHA_M);

    assert_int_equal(github(&ev, "pull_request", github_pr_closed, &err), 0);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_CLOSED);
    assert_false(ev.pr.merged);
    assert_string_equal(ev.pr.merge_sha, "");

    assert_int_equal(github(&ev, "pull_request", github_pr_retargeted, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_PULL_REQUEST);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_SYNCHRONIZE);

    assert_int_equal(github(&ev, "pull_request", github_pr_labeled, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
    assert_non_null(strstr(ev.ignored_reason, "action 'labeled'"));
    assert_int_equal(github(&ev, "pull_request", github_pr_retitled, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
}

static void test_gitea(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;

    assert_int_equal(gitea(&ev, "push", gitea_push, &err), 0);
    assert_int_equal(ev.forge, WEBHOOK_FORGE_GITEA);
    assert_int_equal(ev.kind, WEBHOOK_PUSH);
    assert_string_equal(ev.delivery, "c0b5b7d4-1b2a-4f3e-9a8b-7c6d5e4f3a2b");
    assert_string_equal(ev.repo, "acme/db-specs");
    assert_int_equal(ev.repo_id, 3);
    assert_string_equal(ev.push.ref, "refs/heads/main");
    assert_string_equal(ev.push.before, SHA_A);
    assert_string_equal(ev.push.after, SHA_B);

    assert_int_equal(gitea(&ev, "pull_request", gitea_pr_sync, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_PULL_REQUEST);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_SYNCHRONIZE);
    assert_int_equal(ev.pr.number, 7);
    assert_string_equal(ev.pr.head_sha, SHA_C);
    assert_string_equal(ev.pr.head_ref, "analytics-11");
    assert_string_equal(ev.pr.base_ref, "main");

    assert_int_equal(gitea(&ev, "pull_request", gitea_pr_merged, &err), 0);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_CLOSED);
    assert_true(ev.pr.merged);
    assert_string_equal(ev.pr.merge_sha, SHA_M);

    /* Gitea signs without a prefix; a GitHub-style one does not verify */
    char sig[80];
    sign(sig, "sha256=", "gitea-secret", gitea_push);
    struct hdrs h = {{"X-Gitea-Event", "push", "X-Gitea-Signature", sig, NULL}};
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITEA, "gitea-secret", &h, gitea_push, strlen(gitea_push), &err),
        RV_EAUTH);
    struct hdrs none = {{"X-Gitea-Event", "push", NULL}};
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITEA, "gitea-secret", &none, gitea_push, strlen(gitea_push), &err),
        RV_EAUTH);
    assert_non_null(strstr(err.msg, "missing header 'X-Gitea-Signature'"));
}

static void test_gitlab(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;

    assert_int_equal(gitlab(&ev, "Push Hook", gitlab_push, &err), 0);
    assert_int_equal(ev.forge, WEBHOOK_FORGE_GITLAB);
    assert_int_equal(ev.kind, WEBHOOK_PUSH);
    assert_string_equal(ev.delivery, "13792a34-cac6-4fda-95a8-c58e00a3954e");
    assert_string_equal(ev.event, "Push Hook");
    assert_string_equal(ev.repo, "platform/dbaas/db-specs");
    assert_int_equal(ev.repo_id, 15);
    assert_string_equal(ev.push.ref, "refs/heads/main");
    assert_string_equal(ev.push.before, SHA_M);
    assert_string_equal(ev.push.after, SHA_C);

    assert_int_equal(gitlab(&ev, "Tag Push Hook", gitlab_tag_push, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_PUSH);
    assert_string_equal(ev.push.ref, "refs/tags/v1.0.0");
    assert_true(ev.push.created);

    assert_int_equal(gitlab(&ev, "Merge Request Hook", gitlab_mr_open, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_PULL_REQUEST);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_OPENED);
    assert_int_equal(ev.pr.number, 12); /* iid, not the global id 99 */
    assert_string_equal(ev.pr.head_sha, SHA_C);
    assert_string_equal(ev.pr.head_ref, "billing-pitr");
    assert_string_equal(ev.pr.base_ref, "main");
    assert_string_equal(ev.repo, "platform/dbaas/db-specs");

    assert_int_equal(gitlab(&ev, "Merge Request Hook", gitlab_mr_push, &err), 0);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_SYNCHRONIZE);

    assert_int_equal(gitlab(&ev, "Merge Request Hook", gitlab_mr_edit, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
    assert_non_null(strstr(ev.ignored_reason, "without new commits"));

    assert_int_equal(gitlab(&ev, "Merge Request Hook", gitlab_mr_merge, &err), 0);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_CLOSED);
    assert_true(ev.pr.merged);
    assert_string_equal(ev.pr.merge_sha, SHA_M);

    assert_int_equal(gitlab(&ev, "Merge Request Hook", gitlab_mr_close, &err), 0);
    assert_int_equal(ev.pr.action, WEBHOOK_PR_CLOSED);
    assert_false(ev.pr.merged);

    assert_int_equal(gitlab(&ev, "Merge Request Hook", gitlab_mr_approved, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);

    /* token: wrong, missing, a prefix of the right one */
    const char *tokens[] = {"gl-tokeN", "gl-toke", "gl-token ", ""};
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        struct hdrs h = {{"X-Gitlab-Event", "Push Hook", "X-Gitlab-Token", tokens[i], NULL}};
        assert_int_equal(
            run(&ev, WEBHOOK_FORGE_GITLAB, "gl-token", &h, gitlab_push, strlen(gitlab_push), &err),
            RV_EAUTH);
    }
    struct hdrs none = {{"X-Gitlab-Event", "Push Hook", NULL}};
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITLAB, "gl-token", &none, gitlab_push, strlen(gitlab_push), &err),
        RV_EAUTH);
    assert_non_null(strstr(err.msg, "missing header 'X-Gitlab-Token'"));

    /* delivery id from Idempotency-Key when the event UUID is absent */
    struct hdrs idem = {{"X-Gitlab-Event", "Push Hook", "X-Gitlab-Token", "gl-token",
                         "Idempotency-Key", "f9e0ad8c-6b4a-4b8e-a8a3-2a1c5a0b6c7d", NULL}};
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITLAB, "gl-token", &idem, gitlab_push, strlen(gitlab_push), &err),
        0);
    assert_string_equal(ev.delivery, "f9e0ad8c-6b4a-4b8e-a8a3-2a1c5a0b6c7d");
}

static void test_ignored_events(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;
    const char *body = "{\"zen\":\"Keep it logically awesome.\",\"hook_id\":1}";

    assert_int_equal(github(&ev, "issues", body, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
    assert_non_null(strstr(ev.ignored_reason, "event 'issues' is not used by reeve"));
    assert_int_equal(github(&ev, "ping", body, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
    assert_int_equal(gitea(&ev, "issue_comment", body, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
    assert_int_equal(gitlab(&ev, "Pipeline Hook", body, &err), 0);
    assert_int_equal(ev.kind, WEBHOOK_IGNORED);
    /* an ignored event is still authenticated first */
    struct hdrs h = {{"X-GitHub-Event", "issues", "X-Hub-Signature-256", "sha256=00", NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &h, body, strlen(body), &err),
                     RV_EAUTH);
    assert_int_equal(webhook_http_status(0), 202);
}

static void test_malformed(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;

    assert_int_equal(github(&ev, "push", "{\"ref\":", &err), RV_EPARSE);
    assert_non_null(strstr(err.msg, "'push' payload is not valid JSON"));
    assert_int_equal(webhook_http_status(RV_EPARSE), 400);
    assert_int_equal(github(&ev, "push", "[1,2]", &err), RV_EPARSE);
    assert_int_equal(github(&ev, "push", "", &err), RV_EPARSE);
    assert_int_equal(github(&ev, "push", "{\"ref\":\"a\",\"ref\":\"b\"}", &err), RV_EPARSE);

    /* required fields */
    assert_int_equal(github(&ev, "push",
                            "{\"ref\":\"refs/heads/main\",\"before\":\"" SHA_A "\","
                            "\"repository\":{\"full_name\":\"acme/db-specs\"}}",
                            &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "field 'after' is missing"));
    assert_int_equal(webhook_http_status(RV_EINVAL), 400);
    assert_int_equal(github(&ev, "push",
                            "{\"ref\":\"refs/heads/main\",\"before\":\"" SHA_A "\","
                            "\"after\":\"xyz\",\"repository\":{\"full_name\":\"a/b\"}}",
                            &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "field 'after' is not a 40 or 64 digit hex commit id"));
    assert_int_equal(github(&ev, "push",
                            "{\"ref\":\"refs/heads/main\",\"before\":\"" SHA_A "\","
                            "\"after\":\"" SHA_B "\"}",
                            &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "field 'repository.full_name' is missing"));
    assert_int_equal(github(&ev, "push",
                            "{\"ref\":42,\"before\":\"" SHA_A "\",\"after\":\"" SHA_B "\","
                            "\"repository\":{\"full_name\":\"a/b\"}}",
                            &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "field 'ref' is not a string"));
    assert_int_equal(github(&ev, "push",
                            "{\"ref\":\"main\",\"before\":\"" SHA_A "\",\"after\":\"" SHA_B "\","
                            "\"repository\":{\"full_name\":\"a/b\"}}",
                            &err),
                     RV_EINVAL);
    assert_int_equal(github(&ev, "push",
                            "{\"ref\":\"refs/heads/a\\u0000b\",\"before\":\"" SHA_A "\","
                            "\"after\":\"" SHA_B "\",\"repository\":{\"full_name\":\"a/b\"}}",
                            &err),
                     RV_EPARSE); /* jansson refuses NUL in strings */
    assert_int_equal(github(&ev, "push",
                            "{\"ref\":\"refs/heads/a\\nb\",\"before\":\"" SHA_A "\","
                            "\"after\":\"" SHA_B "\",\"repository\":{\"full_name\":\"a/b\"}}",
                            &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "field 'ref' has control characters"));
    assert_int_equal(github(&ev, "pull_request",
                            "{\"action\":\"opened\",\"number\":1,\"pull_request\":{"
                            "\"head\":{\"ref\":\"x\"},\"base\":{\"ref\":\"main\"}},"
                            "\"repository\":{\"full_name\":\"a/b\"}}",
                            &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "field 'pull_request.head.sha' is missing"));
    assert_int_equal(gitlab(&ev, "Merge Request Hook",
                            "{\"object_kind\":\"merge_request\",\"project\":{\"id\":1,"
                            "\"path_with_namespace\":\"g/p\"},\"object_attributes\":{"
                            "\"iid\":-3,\"action\":\"open\"}}",
                            &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "'object_attributes.iid' is not a positive integer"));

    /* a ref over RV_WEBHOOK_REF_MAX */
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"ref\":\"refs/heads/");
    for (int i = 0; i < RV_WEBHOOK_REF_MAX; i++)
        buf_putc(&b, 'x');
    buf_puts(&b, "\",\"before\":\"" SHA_A "\",\"after\":\"" SHA_B "\","
                 "\"repository\":{\"full_name\":\"a/b\"}}");
    assert_int_equal(github(&ev, "push", b.data, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "the limit is 255"));
    buf_release(&b);

    /* missing event header, bad delivery id */
    char sig[80];
    sign(sig, "sha256=", "s3cret", github_push);
    struct hdrs noevent = {{"X-Hub-Signature-256", sig, NULL}};
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &noevent, github_push, strlen(github_push), &err),
        RV_EINVAL);
    assert_non_null(strstr(err.msg, "header 'X-GitHub-Event' is missing"));
    struct hdrs baddelivery = {{"X-Hub-Signature-256", sig, "X-GitHub-Event", "push",
                                "X-GitHub-Delivery", "has space", NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &baddelivery, github_push,
                         strlen(github_push), &err),
                     RV_EINVAL);

    /* GitHub's form-encoded content type */
    struct hdrs form = {{"X-Hub-Signature-256", sig, "X-GitHub-Event", "push", "Content-Type",
                         "application/x-www-form-urlencoded", NULL}};
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &form, github_push, strlen(github_push), &err),
        RV_EPARSE);
    assert_non_null(strstr(err.msg, "set the webhook's content type to application/json"));
    struct hdrs charset = {{"X-Hub-Signature-256", sig, "X-GitHub-Event", "push", "Content-Type",
                            "Application/JSON ; charset=utf-8", NULL}};
    assert_int_equal(
        run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &charset, github_push, strlen(github_push), &err),
        0);
}

static void test_oversized(void **state)
{
    (void)state;
    struct webhook_event ev;
    struct rv_error err;
    size_t len = RV_HTTP_BODY_MAX + 1;
    char *body = malloc(len + 1);
    memset(body, ' ', len);
    body[len] = '\0';
    struct hdrs h = {{"X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256=00", NULL}};
    assert_int_equal(run(&ev, WEBHOOK_FORGE_GITHUB, "s3cret", &h, body, len, &err), RV_ELIMIT);
    assert_int_equal(webhook_http_status(RV_ELIMIT), 413);
    free(body);
}

/* --- dedup --- */

static void test_dedup(void **state)
{
    (void)state;
    struct webhook_dedup *d = NULL;
    assert_int_equal(webhook_dedup_new(&d, 4), 0);
    assert_false(webhook_dedup_seen(d, "a"));
    assert_true(webhook_dedup_seen(d, "a"));
    assert_true(webhook_dedup_contains(d, "a"));
    assert_false(webhook_dedup_contains(d, "b"));
    assert_int_equal(webhook_dedup_add(d, "b"), 0);
    assert_int_equal(webhook_dedup_add(d, "b"), 0); /* known: no second slot */
    assert_int_equal(webhook_dedup_count(d), 2);
    assert_int_equal(webhook_dedup_add(d, "c"), 0);
    assert_int_equal(webhook_dedup_add(d, "d"), 0);
    assert_int_equal(webhook_dedup_add(d, "e"), 0); /* full: "a" is forgotten */
    assert_int_equal(webhook_dedup_count(d), 4);
    assert_false(webhook_dedup_contains(d, "a"));
    assert_true(webhook_dedup_contains(d, "b"));
    assert_true(webhook_dedup_contains(d, "e"));
    assert_int_equal(webhook_dedup_add(d, ""), RV_EINVAL);
    char longid[RV_WEBHOOK_DELIVERY_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(webhook_dedup_add(d, longid), RV_EINVAL);
    assert_false(webhook_dedup_contains(d, longid));
    webhook_dedup_free(d);
    webhook_dedup_free(NULL);
}

static void test_dedup_window(void **state)
{
    (void)state;
    /* After every insert exactly the newest `cap` ids are known: checks the
     * index stays right through many evictions (deletions mid-probe-run). */
    enum { CAP = 61, N = 20000 };
    struct webhook_dedup *d = NULL;
    char id[32], old[32];
    assert_int_equal(webhook_dedup_new(&d, CAP), 0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "delivery-%d", i * 7919 % 100003);
        assert_false(webhook_dedup_seen(d, id));
        if (i % 97 == 0) {
            for (int k = 0; k < CAP && k <= i; k++) {
                snprintf(old, sizeof(old), "delivery-%d", (i - k) * 7919 % 100003);
                assert_true(webhook_dedup_contains(d, old));
            }
            if (i >= CAP) {
                snprintf(old, sizeof(old), "delivery-%d", (i - CAP) * 7919 % 100003);
                assert_false(webhook_dedup_contains(d, old));
            }
        }
    }
    assert_int_equal(webhook_dedup_count(d), CAP);
    webhook_dedup_free(d);

    struct webhook_dedup *dflt = NULL;
    assert_int_equal(webhook_dedup_new(&dflt, 0), 0);
    for (int i = 0; i < RV_WEBHOOK_DEDUP_MAX + 10; i++) {
        snprintf(id, sizeof(id), "%d", i);
        webhook_dedup_add(dflt, id);
    }
    assert_int_equal(webhook_dedup_count(dflt), RV_WEBHOOK_DEDUP_MAX);
    webhook_dedup_free(dflt);
}

static void test_forge_names(void **state)
{
    (void)state;
    enum webhook_forge f;
    assert_int_equal(webhook_forge_parse(&f, "GitLab"), 0);
    assert_int_equal(f, WEBHOOK_FORGE_GITLAB);
    assert_string_equal(webhook_forge_name(f), "gitlab");
    assert_int_equal(webhook_forge_parse(&f, "gitea"), 0);
    assert_int_equal(f, WEBHOOK_FORGE_GITEA);
    assert_int_equal(webhook_forge_parse(&f, "bitbucket"), RV_EINVAL);
    assert_string_equal(webhook_pr_action_name(WEBHOOK_PR_SYNCHRONIZE), "synchronize");
}

/* --- end to end through lib/httpd --- */

#define QUEUE_CAP 4
#define WORK_MS 300

/* A stand-in for the reconciler's queue: on_event copies the event and
 * returns; a worker in the thread pool takes WORK_MS per event. */
struct consumer {
    uv_loop_t *loop;
    struct webhook_event queue[QUEUE_CAP];
    size_t head;
    size_t len;
    bool working;
    uv_work_t work;
    int processed; /* read by the client thread */
    struct webhook_event got[32];
    size_t ngot;
};

static void slow_work(uv_work_t *w)
{
    (void)w;
    usleep(WORK_MS * 1000);
}

static void start_work(struct consumer *c);

static void work_done(uv_work_t *w, int status)
{
    struct consumer *c = w->data;
    (void)status;
    c->head = (c->head + 1) % QUEUE_CAP;
    c->len--;
    __atomic_add_fetch(&c->processed, 1, __ATOMIC_RELEASE);
    c->working = false;
    if (c->len > 0)
        start_work(c);
}

static void start_work(struct consumer *c)
{
    c->working = true;
    c->work.data = c;
    uv_queue_work(c->loop, &c->work, slow_work, work_done);
}

static int enqueue(const struct webhook_event *ev, void *payload)
{
    struct consumer *c = payload;
    if (c->len == QUEUE_CAP)
        return RV_EBUSY;
    c->queue[(c->head + c->len) % QUEUE_CAP] = *ev;
    c->len++;
    if (c->ngot < 32)
        c->got[c->ngot++] = *ev;
    if (!c->working)
        start_work(c);
    return 0;
}

struct answer {
    long status;
    char body[512];
    char headers[1024];
    double ms;
    int processed_then; /* consumer's finished count when the answer arrived */
};

struct e2e {
    uv_loop_t loop;
    struct httpd *h;
    uv_async_t done;
    uint16_t port;
    bool closed;
    struct consumer consumer;
    struct answer a[32];
    size_t na;
};

static size_t e2e_body(char *data, size_t size, size_t n, void *userp)
{
    struct answer *a = userp;
    size_t used = strlen(a->body);
    size_t take = size * n < sizeof(a->body) - 1 - used ? size * n : sizeof(a->body) - 1 - used;
    memcpy(a->body + used, data, take);
    a->body[used + take] = '\0';
    return size * n;
}

static size_t e2e_header(char *data, size_t size, size_t n, void *userp)
{
    struct answer *a = userp;
    size_t used = strlen(a->headers);
    size_t take =
        size * n < sizeof(a->headers) - 1 - used ? size * n : sizeof(a->headers) - 1 - used;
    memcpy(a->headers + used, data, take);
    a->headers[used + take] = '\0';
    return size * n;
}

static struct answer *post(struct e2e *t, CURL *c, const char *method, const char *path,
                           const char *body, size_t len, const char *const *headers)
{
    struct answer *a = &t->a[t->na++];
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    char url[256];
    struct timeval t0, t1;

    memset(a, 0, sizeof(*a));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)t->port, path);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, e2e_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, e2e_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    gettimeofday(&t0, NULL);
    curl_easy_perform(c);
    gettimeofday(&t1, NULL);
    a->processed_then = __atomic_load_n(&t->consumer.processed, __ATOMIC_ACQUIRE);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    a->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_usec - t0.tv_usec) / 1e3;
    curl_slist_free_all(hl);
    return a;
}

static struct answer *post_github(struct e2e *t, CURL *c, const char *event, const char *id,
                                  const char *body, const char *secret)
{
    char sig[80], h_sig[128], h_event[96], h_id[160];
    sign(sig, "sha256=", secret, body);
    snprintf(h_sig, sizeof(h_sig), "X-Hub-Signature-256: %s", sig);
    snprintf(h_event, sizeof(h_event), "X-GitHub-Event: %s", event);
    snprintf(h_id, sizeof(h_id), "X-GitHub-Delivery: %s", id);
    const char *hdrs[] = {h_sig,
                          h_event,
                          h_id,
                          "Content-Type: application/json",
                          "User-Agent: GitHub-Hookshot/044aadd",
                          NULL};
    return post(t, c, "POST", "/hooks/github", body, strlen(body), hdrs);
}

static void *e2e_client(void *arg)
{
    struct e2e *t = arg;
    CURL *c = curl_easy_init();
    char id[64];

    /* 0: a push is accepted at once, while the consumer is busy with nothing yet done */
    post_github(t, c, "push", "d-0001", github_push, "s3cret");
    /* 1: GitHub's redelivery of the same delivery */
    post_github(t, c, "push", "d-0001", github_push, "s3cret");
    /* 2: wrong secret */
    post_github(t, c, "push", "d-0002", github_push, "wrong");
    /* 3: malformed JSON */
    post_github(t, c, "push", "d-0003", "{\"ref\":", "s3cret");
    /* 4: GET on the hook */
    post(t, c, "GET", "/hooks/github", NULL, 0, NULL);
    /* 5: an event reeve does not use */
    post_github(t, c, "issues", "d-0005", "{}", "s3cret");
    /* 6: no signature at all */
    const char *unsigned_hdrs[] = {"X-GitHub-Event: push", "Content-Type: application/json", NULL};
    post(t, c, "POST", "/hooks/github", github_push, strlen(github_push), unsigned_hdrs);
    /* 7: Gitea pull request */
    char sig[80], h_sig[128];
    sign(sig, "", "gitea-secret", gitea_pr_sync);
    snprintf(h_sig, sizeof(h_sig), "X-Gitea-Signature: %s", sig);
    const char *gitea_hdrs[] = {h_sig, "X-Gitea-Event: pull_request", "X-Gitea-Delivery: g-0001",
                                "Content-Type: application/json", NULL};
    post(t, c, "POST", "/hooks/gitea", gitea_pr_sync, strlen(gitea_pr_sync), gitea_hdrs);
    /* 8: GitLab merge request */
    const char *gitlab_hdrs[] = {"X-Gitlab-Event: Merge Request Hook", "X-Gitlab-Token: gl-token",
                                 "X-Gitlab-Event-UUID: l-0001", "Content-Type: application/json",
                                 NULL};
    post(t, c, "POST", "/hooks/gitlab", gitlab_mr_open, strlen(gitlab_mr_open), gitlab_hdrs);
    /* 9: oversized body */
    size_t big_len = RV_HTTP_BODY_MAX + 1;
    char *big = malloc(big_len);
    memset(big, ' ', big_len);
    post(t, c, "POST", "/hooks/gitlab", big, big_len, gitlab_hdrs);
    free(big);
    /* 10..13: a burst while the consumer is still on the first events: the
     * queue (4) fills up, the last is told to retry */
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "burst-%d", i);
        post_github(t, c, "push", id, github_push, "s3cret");
    }
    /* 14: the refused delivery again: not remembered as seen, so not a "duplicate" */
    post_github(t, c, "push", "burst-3", github_push, "s3cret");
    curl_easy_cleanup(c);
    uv_async_send(&t->done);
    return NULL;
}

static void e2e_closed(void *payload)
{
    struct e2e *t = payload;
    t->closed = true;
}

static void e2e_done(uv_async_t *a)
{
    struct e2e *t = a->data;
    httpd_close(t->h, e2e_closed, t);
    uv_close((uv_handle_t *)a, NULL);
}

static void test_end_to_end(void **state)
{
    (void)state;
    struct e2e *t = calloc(1, sizeof(*t));
    struct rv_error err;
    struct webhook_route *gh = NULL, *gt = NULL, *gl = NULL;
    pthread_t thread;

    assert_int_equal(uv_loop_init(&t->loop), 0);
    t->consumer.loop = &t->loop;
    struct httpd_config hc = {.listen = "127.0.0.1:0"};
    assert_int_equal(httpd_new(&t->h, &t->loop, &hc, &err), 0);
    t->port = httpd_port(t->h);

    struct webhook_route_config c1 = {.forge = WEBHOOK_FORGE_GITHUB,
                                      .secret = "s3cret",
                                      .on_event = enqueue,
                                      .payload = &t->consumer};
    struct webhook_route_config c2 = {.forge = WEBHOOK_FORGE_GITEA,
                                      .secret = "gitea-secret",
                                      .on_event = enqueue,
                                      .payload = &t->consumer};
    struct webhook_route_config c3 = {.forge = WEBHOOK_FORGE_GITLAB,
                                      .secret = "gl-token",
                                      .on_event = enqueue,
                                      .payload = &t->consumer};
    assert_int_equal(webhook_route_install(&gh, t->h, "/hooks/github", &c1, &err), 0);
    assert_int_equal(webhook_route_install(&gt, t->h, "/hooks/gitea", &c2, &err), 0);
    assert_int_equal(webhook_route_install(&gl, t->h, "/hooks/gitlab", &c3, &err), 0);
    /* a route without a secret is refused */
    struct webhook_route *nosecret = NULL;
    struct webhook_route_config c4 = {
        .forge = WEBHOOK_FORGE_GITHUB, .secret = "", .on_event = enqueue, .payload = &t->consumer};
    assert_int_equal(webhook_route_install(&nosecret, t->h, "/hooks/x", &c4, &err), RV_EINVAL);
    assert_null(nosecret);
    assert_non_null(strstr(err.msg, "no secret configured"));

    assert_int_equal(uv_async_init(&t->loop, &t->done, e2e_done), 0);
    t->done.data = t;
    assert_int_equal(pthread_create(&thread, NULL, e2e_client, t), 0);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    pthread_join(thread, NULL);
    assert_true(t->closed);
    assert_int_equal(uv_loop_close(&t->loop), 0);

    struct answer *a = t->a;
    assert_int_equal(a[0].status, 202);
    assert_string_equal(a[0].body, "accepted\n");
    /* answered before the (slow) consumer finished anything */
    assert_int_equal(a[0].processed_then, 0);
    assert_int_equal(a[1].status, 200);
    assert_string_equal(a[1].body, "duplicate delivery, ignored\n");
    assert_int_equal(a[2].status, 401);
    assert_non_null(strstr(a[2].body, "does not match the body"));
    assert_int_equal(a[3].status, 400);
    assert_non_null(strstr(a[3].body, "not valid JSON"));
    assert_int_equal(a[4].status, 405);
    assert_non_null(strcasestr(a[4].headers, "allow: POST"));
    assert_int_equal(a[5].status, 202);
    assert_non_null(strstr(a[5].body, "ignored: event 'issues' is not used by reeve"));
    assert_int_equal(a[6].status, 401);
    assert_non_null(strstr(a[6].body, "missing header 'X-Hub-Signature-256'"));
    assert_int_equal(a[7].status, 202);
    assert_int_equal(a[8].status, 202);
    assert_int_equal(a[9].status, 413);
    /* burst: events 0, 7, 8 and burst-0 fill the queue of 4 while the first
     * is in work... */
    int accepted = 0, busy = 0;
    for (int i = 10; i <= 13; i++) {
        if (a[i].status == 202)
            accepted++;
        else if (a[i].status == 503)
            busy++;
    }
    assert_true(busy >= 1);
    assert_int_equal(accepted + busy, 4);
    assert_int_equal(a[13].status, 503);
    assert_non_null(strcasestr(a[13].headers, "retry-after: 10"));
    assert_int_equal(a[14].status, 503); /* not "duplicate": a refused id is not remembered */

    /* what the consumer received, in order */
    struct consumer *c = &t->consumer;
    assert_int_equal(c->ngot, 3 + (size_t)accepted);
    assert_int_equal(c->got[0].forge, WEBHOOK_FORGE_GITHUB);
    assert_int_equal(c->got[0].kind, WEBHOOK_PUSH);
    assert_string_equal(c->got[0].delivery, "d-0001");
    assert_string_equal(c->got[0].push.after, SHA_B);
    assert_int_equal(c->got[1].forge, WEBHOOK_FORGE_GITEA);
    assert_int_equal(c->got[1].pr.action, WEBHOOK_PR_SYNCHRONIZE);
    assert_int_equal(c->got[1].pr.number, 7);
    assert_int_equal(c->got[2].forge, WEBHOOK_FORGE_GITLAB);
    assert_int_equal(c->got[2].pr.number, 12);
    assert_string_equal(c->got[2].delivery, "l-0001");
    assert_int_equal(c->processed, (int)c->ngot);

    struct webhook_route_stats s;
    webhook_route_stats(&s, gh);
    assert_int_equal(s.accepted, 1 + (uint64_t)accepted);
    assert_int_equal(s.duplicates, 1);
    assert_int_equal(s.ignored, 1);
    assert_int_equal(s.rejected, 3);
    assert_int_equal(s.busy, (uint64_t)busy + 1);

    /* Latency of the answers to accepted deliveries while the consumer was
     * busy; reported, not asserted (timings belong in bench/). */
    double worst = 0;
    for (size_t i = 0; i < t->na; i++)
        if (a[i].status == 202 && a[i].ms > worst)
            worst = a[i].ms;
    print_message("webhook answered in at most %.1f ms while each queued event takes %d ms "
                  "(forges time out at 10 s)\n",
                  worst, WORK_MS);

    webhook_route_free(gh);
    webhook_route_free(gt);
    webhook_route_free(gl);
    webhook_route_free(NULL);
    free(t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_github_documentation_example),
        cmocka_unit_test(test_github_signature_rejections),
        cmocka_unit_test(test_github_push),
        cmocka_unit_test(test_github_pull_request),
        cmocka_unit_test(test_gitea),
        cmocka_unit_test(test_gitlab),
        cmocka_unit_test(test_ignored_events),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_dedup_window),
        cmocka_unit_test(test_forge_names),
        cmocka_unit_test(test_end_to_end),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
