/* test_forge.c - reconciler/forge: requests as data, field limits and UTF-8
 * truncation, response classification, Retry-After parsing; then one live
 * round per forge against tests/fakeforge/fakeforge.py on loopback (skipped
 * when python3 or REEVE_SOURCE_DIR is missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "forge.h"

#include "../fakeforge/fakeforge_client.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"
#define TOKEN "tok_s3cr3t_value"

static const char *header(const struct forge_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strncmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
            return req->headers[i] + n + 2;
    }
    return NULL;
}

static json_t *body_of(const struct forge_request *req)
{
    json_t *doc = json_loads(req->body, 0, NULL);
    assert_non_null(doc);
    assert_true(json_is_object(doc));
    return doc;
}

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static struct forge_status status_default(void)
{
    struct forge_status st = {
        .repo = "acme/infra",
        .sha = SHA,
        .context = "reeve/plan",
        .state = FORGE_SUCCESS,
        .description = "2 clusters change",
        .target_url = "https://reeve.example/plans/7",
    };
    return st;
}

/* ---- request building ---- */

static void test_github_request(void **state)
{
    (void)state;
    struct forge f;
    struct forge_request req;
    struct forge_status st = status_default();
    struct rv_error err;

    forge_init(&f, FORGE_GITHUB, "gh", "https://api.github.com/", TOKEN);
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "https://api.github.com/repos/acme/infra/statuses/" SHA);
    assert_string_equal(header(&req, "Authorization"), "Bearer " TOKEN);
    assert_string_equal(header(&req, "Accept"), "application/vnd.github+json");
    assert_string_equal(header(&req, "X-GitHub-Api-Version"), "2022-11-28");
    assert_string_equal(header(&req, "User-Agent"), "reeve/" REEVE_VERSION);
    assert_string_equal(header(&req, "Content-Type"), "application/json");
    json_t *b = body_of(&req);
    assert_int_equal(json_object_size(b), 4);
    assert_string_equal(jstr(b, "state"), "success");
    assert_string_equal(jstr(b, "context"), "reeve/plan");
    assert_string_equal(jstr(b, "description"), "2 clusters change");
    assert_string_equal(jstr(b, "target_url"), "https://reeve.example/plans/7");
    json_decref(b);
    forge_request_release(&req);

    /* Empty description and url are left out, not sent empty. */
    st.description = "";
    st.target_url = NULL;
    st.state = FORGE_ERROR;
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    b = body_of(&req);
    assert_int_equal(json_object_size(b), 2);
    assert_string_equal(jstr(b, "state"), "error");
    json_decref(b);
    forge_request_release(&req);
    forge_request_release(NULL);
}

static void test_gitea_request(void **state)
{
    (void)state;
    struct forge f;
    struct forge_request req;
    struct forge_status st = status_default();
    struct rv_error err;

    forge_init(&f, FORGE_GITEA, "gitea", "https://git.example.org", TOKEN);
    st.state = FORGE_FAILURE;
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    assert_string_equal(req.url, "https://git.example.org/api/v1/repos/acme/infra/statuses/" SHA);
    assert_string_equal(header(&req, "Authorization"), "token " TOKEN);
    assert_null(header(&req, "X-GitHub-Api-Version"));
    json_t *b = body_of(&req);
    assert_string_equal(jstr(b, "state"), "failure");
    assert_string_equal(jstr(b, "context"), "reeve/plan");
    json_decref(b);
    forge_request_release(&req);
}

static void test_gitlab_request(void **state)
{
    (void)state;
    struct forge f;
    struct forge_request req;
    struct forge_status st = status_default();
    struct rv_error err;

    forge_init(&f, FORGE_GITLAB, "gl", "https://gitlab.example.com", TOKEN);
    st.repo = "platform/db/infra.specs";
    st.state = FORGE_FAILURE;
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    assert_string_equal(req.url, "https://gitlab.example.com/api/v4/projects/"
                                 "platform%2Fdb%2Finfra.specs/statuses/" SHA);
    assert_string_equal(header(&req, "PRIVATE-TOKEN"), TOKEN);
    assert_null(header(&req, "Authorization"));
    json_t *b = body_of(&req);
    assert_string_equal(jstr(b, "state"), "failed");
    assert_string_equal(jstr(b, "name"), "reeve/plan");
    assert_null(json_object_get(b, "context"));
    json_decref(b);
    forge_request_release(&req);

    /* A numeric project id goes as is; error maps to failed too. */
    st.repo = "4711";
    st.state = FORGE_ERROR;
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    assert_string_equal(req.url, "https://gitlab.example.com/api/v4/projects/4711/statuses/" SHA);
    b = body_of(&req);
    assert_string_equal(jstr(b, "state"), "failed");
    json_decref(b);
    forge_request_release(&req);

    assert_string_equal(forge_state_wire(FORGE_GITLAB, FORGE_PENDING), "pending");
    assert_string_equal(forge_state_wire(FORGE_GITLAB, FORGE_SUCCESS), "success");
    assert_string_equal(forge_state_wire(FORGE_GITHUB, FORGE_FAILURE), "failure");
}

/* ---- field limits ---- */

static void test_text_fit(void **state)
{
    (void)state;
    char *out = NULL;
    char in[512];

    /* 200 ASCII characters: 139 kept plus the ellipsis. */
    memset(in, 'a', 200);
    in[200] = '\0';
    assert_int_equal(forge_text_fit(&out, in, 140), 0);
    assert_int_equal(forge_utf8_chars(out), 140);
    assert_int_equal(strlen(out), 139 + 3);
    assert_string_equal(out + 139, "\xe2\x80\xa6");
    free(out);

    /* A 3-byte character (the euro sign) is character 139: it is kept whole
     * and the ellipsis is character 140. */
    memset(in, 'a', 138);
    strcpy(in + 138, "\xe2\x82\xac"
                     "bbbbbbbbbb");
    assert_int_equal(forge_text_fit(&out, in, 140), 0);
    assert_int_equal(forge_utf8_chars(out), 140);
    assert_int_equal(strlen(out), 138 + 3 + 3);
    assert_memory_equal(out + 138, "\xe2\x82\xac\xe2\x80\xa6", 7);
    free(out);

    /* The euro sign as character 140 of 141: cut before it, never inside. */
    memset(in, 'a', 139);
    strcpy(in + 139, "\xe2\x82\xac"
                     "b");
    assert_int_equal(forge_text_fit(&out, in, 140), 0);
    assert_int_equal(strlen(out), 139 + 3);
    assert_string_equal(out + 139, "\xe2\x80\xa6");
    free(out);

    /* Exactly 140 characters, multibyte ones included: unchanged. */
    memset(in, 'a', 139);
    strcpy(in + 139, "\xc3\xa9");
    assert_int_equal(forge_text_fit(&out, in, 140), 0);
    assert_string_equal(out, in);
    free(out);

    /* Invalid UTF-8 becomes U+FFFD; controls become spaces. */
    assert_int_equal(forge_text_fit(&out, "ok\xff\xc0\xafline\nnext\t!", 140), 0);
    assert_string_equal(out, "ok\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdline next !");
    free(out);
    /* Surrogates encoded in UTF-8 are invalid too. */
    assert_int_equal(forge_text_fit(&out, "\xed\xa0\x80", 10), 0);
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(out);
    /* A 4-byte character cut off at the end of the string. */
    assert_int_equal(forge_text_fit(&out, "x\xf0\x9f\x98", 10), 0);
    assert_string_equal(out, "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(out);

    assert_int_equal(forge_text_fit(&out, "abc", 1), 0);
    assert_string_equal(out, "\xe2\x80\xa6");
    free(out);
    assert_int_equal(forge_text_fit(&out, "abc", 0), 0);
    assert_string_equal(out, "");
    free(out);
}

static void test_description_truncated_per_forge(void **state)
{
    (void)state;
    struct forge f;
    struct forge_request req;
    struct forge_status st = status_default();
    struct rv_error err;

    /* 300 two-byte characters. */
    char *big = malloc(601);
    assert_non_null(big);
    for (int i = 0; i < 300; i++)
        memcpy(big + 2 * i, "\xc3\xa4", 2);
    big[600] = '\0';
    st.description = big;

    forge_init(&f, FORGE_GITHUB, "gh", "https://api.github.com", TOKEN);
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    json_t *b = body_of(&req);
    assert_int_equal(forge_utf8_chars(jstr(b, "description")), RV_FORGE_GITHUB_DESC_MAX);
    json_decref(b);
    forge_request_release(&req);

    forge_init(&f, FORGE_GITLAB, "gl", "https://gitlab.example.com", TOKEN);
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    b = body_of(&req);
    assert_int_equal(forge_utf8_chars(jstr(b, "description")), RV_FORGE_GITLAB_DESC_MAX);
    json_decref(b);
    forge_request_release(&req);
    free(big);
}

static void test_invalid_requests(void **state)
{
    (void)state;
    struct forge f;
    struct forge_request req;
    struct forge_status st;
    struct rv_error err;
    char context[300];

    forge_init(&f, FORGE_GITHUB, "gh", "https://api.github.com", TOKEN);
    st = status_default();
    st.sha = "main";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "commit 'main' is not a full hex commit id"));

    st = status_default();
    st.repo = "acme/infra/extra";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "'owner/name'"));
    st.repo = "acme/../x";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
    st.repo = "acme/in fra";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);

    /* A context over the limit is refused, never cut: it is an identity. */
    st = status_default();
    memset(context, 'c', 256);
    context[256] = '\0';
    st.context = context;
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
    context[255] = '\0';
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    forge_request_release(&req);
    st.context = "";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
    st.context = "reeve/\nplan";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);

    st = status_default();
    st.target_url = "javascript:alert(1)";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);

    /* GitLab caps target_url at 255. */
    char url[300];
    memcpy(url, "https://", 8);
    memset(url + 8, 'u', 250);
    url[258] = '\0';
    st.target_url = url;
    assert_int_equal(forge_request_build(&req, &f, &st, &err), 0);
    forge_request_release(&req);
    forge_init(&f, FORGE_GITLAB, "gl", "https://gitlab.example.com", TOKEN);
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);

    /* A token that could inject a header is refused, and not echoed. */
    st = status_default();
    forge_init(&f, FORGE_GITHUB, "gh", "https://api.github.com", "abc\r\nX-Evil: 1");
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
    assert_null(strstr(err.msg, "abc"));
    assert_non_null(strstr(err.msg, "forge 'gh': the token"));
    forge_init(&f, FORGE_GITHUB, "gh", "https://api.github.com", "");
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);

    forge_init(&f, FORGE_GITHUB, "gh", "ftp://api.github.com", TOKEN);
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "api url"));

    /* GitLab needs group/project; a lone name is not a project path. */
    forge_init(&f, FORGE_GITLAB, "gl", "https://gitlab.example.com", TOKEN);
    st.repo = "infra";
    assert_int_equal(forge_request_build(&req, &f, &st, &err), RV_EINVAL);
}

/* ---- classification ---- */

static void response(struct forge_response *r, long status, const char *body)
{
    forge_response_init(r);
    r->status = status;
    if (body)
        buf_puts(&r->body, body);
}

static void test_classify_basic(void **state)
{
    (void)state;
    struct forge f;
    struct forge_status st = status_default();
    struct forge_response r;
    struct forge_result res;
    const int64_t now = 1800000000;

    forge_init(&f, FORGE_GITHUB, "gh", "https://api.github.com", TOKEN);

    response(&r, 201, "{}");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_OK);
    forge_response_release(&r);

    response(&r, 401, "{\"message\":\"Bad credentials\",\"status\":\"401\"}");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_AUTH);
    assert_non_null(strstr(res.message, "Bad credentials"));
    assert_non_null(strstr(res.message, "check the token configured for forge 'gh'"));
    assert_null(strstr(res.message, TOKEN));
    forge_response_release(&r);

    /* 403 without any rate-limit sign: the token lacks rights. */
    response(&r, 403, "{\"message\":\"Resource not accessible by integration\"}");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_AUTH);
    assert_false(res.rate_limited);
    assert_non_null(strstr(res.message, "repo:status"));
    forge_response_release(&r);

    response(&r, 404, "{\"message\":\"Not Found\"}");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_PERMANENT);
    assert_non_null(strstr(res.message, "repository 'acme/infra'"));
    assert_non_null(strstr(res.message, "Not Found"));
    forge_response_release(&r);

    response(&r, 422,
             "{\"message\":\"Validation Failed\",\"errors\":[{\"resource\":\"Status\","
             "\"code\":\"custom\",\"field\":\"description\",\"message\":\"description is too "
             "long (maximum is 140 characters)\"}]}");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_PERMANENT);
    assert_non_null(
        strstr(res.message, "Validation Failed: description is too long (maximum is 140"));
    forge_response_release(&r);

    response(&r, 502, "<html>bad gateway</html>");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_RETRY);
    assert_int_equal(res.retry_at, 0); /* the caller's backoff decides */
    assert_non_null(strstr(res.message, "bad gateway"));
    forge_response_release(&r);

    response(&r, 503, "{\"message\":\"Service Unavailable\"}");
    strcpy(r.retry_after, "30");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_RETRY);
    assert_false(res.rate_limited);
    assert_int_equal(res.retry_at, now + 30);
    forge_response_release(&r);

    response(&r, 0, NULL);
    r.transport_error = RV_ETIMEOUT;
    strcpy(r.transport_msg, "no answer within 30000 ms");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_RETRY);
    assert_non_null(strstr(res.message, "cannot reach forge 'gh'"));
    forge_response_release(&r);

    response(&r, 301, "");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_PERMANENT);
    forge_response_release(&r);
}

static void test_classify_rate_limits(void **state)
{
    (void)state;
    struct forge f;
    struct forge_status st = status_default();
    struct forge_response r;
    struct forge_result res;
    const int64_t now = 1800000000;

    forge_init(&f, FORGE_GITHUB, "gh", "https://api.github.com", TOKEN);

    /* GitHub primary limit: 403, remaining 0, reset as epoch seconds. */
    response(&r, 403, "{\"message\":\"API rate limit exceeded for user ID 1.\"}");
    strcpy(r.ratelimit_remaining, "0");
    strcpy(r.ratelimit_reset, "1800000420");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_RETRY);
    assert_true(res.rate_limited);
    assert_int_equal(res.retry_at, 1800000420);
    forge_response_release(&r);

    /* Secondary limit: 429 with Retry-After seconds wins over reset. */
    response(&r, 429, "{\"message\":\"You have exceeded a secondary rate limit.\"}");
    strcpy(r.retry_after, "75");
    strcpy(r.ratelimit_remaining, "0");
    strcpy(r.ratelimit_reset, "1800000420");
    forge_classify(&res, &f, &st, &r, now);
    assert_true(res.rate_limited);
    assert_int_equal(res.retry_at, now + 75);
    forge_response_release(&r);

    /* Secondary limit told only in words: at least a minute. */
    response(&r, 403, "{\"message\":\"You have exceeded a secondary rate limit.\"}");
    forge_classify(&res, &f, &st, &r, now);
    assert_true(res.rate_limited);
    assert_int_equal(res.retry_at, now + RV_FORGE_RATE_LIMIT_WAIT_S);
    forge_response_release(&r);

    /* Retry-After as an HTTP-date. */
    response(&r, 429, "");
    strcpy(r.retry_after, "Fri, 15 Jan 2027 08:00:00 GMT"); /* 1800000000 is 08:00:00 */
    forge_classify(&res, &f, &st, &r, now - 100);
    assert_int_equal(res.retry_at, now);
    forge_response_release(&r);

    /* A reset in the past (clock skew): soon, not never. */
    response(&r, 403, "{}");
    strcpy(r.ratelimit_remaining, "0");
    strcpy(r.ratelimit_reset, "1799999000");
    forge_classify(&res, &f, &st, &r, now);
    assert_true(res.rate_limited);
    assert_int_equal(res.retry_at, now + 1);
    forge_response_release(&r);

    /* An absurd reset is clamped. */
    response(&r, 429, "");
    strcpy(r.ratelimit_remaining, "0");
    strcpy(r.ratelimit_reset, "1900000000");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.retry_at, now + RV_FORGE_RETRY_AFTER_MAX_S);
    forge_response_release(&r);

    /* remaining > 0 and no Retry-After on 403: a rights problem, not a limit. */
    response(&r, 403, "{\"message\":\"Must have admin rights to Repository.\"}");
    strcpy(r.ratelimit_remaining, "4999");
    strcpy(r.ratelimit_reset, "1800000420");
    forge_classify(&res, &f, &st, &r, now);
    assert_int_equal(res.outcome, FORGE_AUTH);
    forge_response_release(&r);

    /* GitLab: 429 "Retry later" with RateLimit-Reset (epoch). */
    forge_init(&f, FORGE_GITLAB, "gl", "https://gitlab.example.com", TOKEN);
    response(&r, 429, "Retry later\n");
    strcpy(r.ratelimit_remaining, "0");
    strcpy(r.ratelimit_reset, "1800000060");
    forge_classify(&res, &f, &st, &r, now);
    assert_true(res.rate_limited);
    assert_int_equal(res.retry_at, 1800000060);
    forge_response_release(&r);
}

static void test_classify_gitlab(void **state)
{
    (void)state;
    struct forge f;
    struct forge_status st = status_default();
    struct forge_response r;
    struct forge_result res;

    forge_init(&f, FORGE_GITLAB, "gl", "https://gitlab.example.com", TOKEN);
    response(&r, 400,
             "{\"message\":{\"description\":[\"is too long (maximum is 255 "
             "characters)\"]}}");
    forge_classify(&res, &f, &st, &r, 1);
    assert_int_equal(res.outcome, FORGE_PERMANENT);
    assert_non_null(strstr(res.message, "description is too long (maximum is 255"));
    forge_response_release(&r);

    response(&r, 400, "{\"error\":\"state does not have a valid value\"}");
    forge_classify(&res, &f, &st, &r, 1);
    assert_int_equal(res.outcome, FORGE_PERMANENT);
    assert_non_null(strstr(res.message, "state does not have a valid value"));
    forge_response_release(&r);

    /* pending -> pending is refused by GitLab, but the commit does show
     * pending: that is success for the caller. Not for another state. */
    const char *again = "{\"message\":\"Cannot transition status via :enqueue from :pending "
                        "(Reason(s): Status cannot transition via \\\"enqueue\\\")\"}";
    st.state = FORGE_PENDING;
    response(&r, 400, again);
    forge_classify(&res, &f, &st, &r, 1);
    assert_int_equal(res.outcome, FORGE_OK);
    forge_response_release(&r);
    st.state = FORGE_SUCCESS;
    response(&r, 400, again);
    forge_classify(&res, &f, &st, &r, 1);
    assert_int_equal(res.outcome, FORGE_PERMANENT);
    forge_response_release(&r);
}

static void test_retry_after_parse(void **state)
{
    (void)state;
    int64_t at = 0;
    const int64_t now = 1000;

    assert_int_equal(forge_parse_retry_after(&at, "120", now), 0);
    assert_int_equal(at, 1120);
    assert_int_equal(forge_parse_retry_after(&at, "0", now), 0);
    assert_int_equal(at, 1000);
    assert_int_equal(forge_parse_retry_after(&at, "99999999999999999999", now), 0);
    assert_int_equal(at, now + RV_FORGE_RETRY_AFTER_MAX_S);
    assert_int_equal(forge_parse_retry_after(&at, "Wed, 21 Oct 2015 07:28:00 GMT", now), 0);
    assert_int_equal(at, 1445412480);
    /* The obsolete forms HTTP/1.1 still requires recipients to accept. */
    assert_int_equal(forge_parse_retry_after(&at, "Wednesday, 21-Oct-15 07:28:00 GMT", now), 0);
    assert_int_equal(at, 1445412480);
    assert_int_equal(forge_parse_retry_after(&at, "Wed Oct 21 07:28:00 2015", now), 0);
    assert_int_equal(at, 1445412480);
    assert_int_equal(forge_parse_retry_after(&at, "12s", now), RV_EPARSE);
    assert_int_equal(forge_parse_retry_after(&at, "-5", now), RV_EPARSE);
    assert_int_equal(forge_parse_retry_after(&at, "soon", now), RV_EPARSE);
    assert_int_equal(forge_parse_retry_after(&at, "", now), RV_EPARSE);
}

static void test_names(void **state)
{
    (void)state;
    enum forge_kind k;
    enum forge_state s;
    assert_int_equal(forge_kind_parse(&k, "gitlab"), 0);
    assert_int_equal(k, FORGE_GITLAB);
    assert_int_equal(forge_kind_parse(&k, "bitbucket"), RV_EINVAL);
    assert_int_equal(forge_state_parse(&s, "failure"), 0);
    assert_int_equal(s, FORGE_FAILURE);
    assert_int_equal(forge_state_parse(&s, "failed"), RV_EINVAL);
    assert_string_equal(forge_kind_name(FORGE_GITEA), "gitea");
}

/* ---- live, against the strict fake ---- */

static void live_round(const char *kind, enum forge_kind fk, const char *repo)
{
    struct fakeforge ff;
    struct forge f;
    struct forge_result res;
    struct rv_error err;
    struct forge_status st = status_default();
    char longdesc[400];

    if (fakeforge_start(&ff, kind, TOKEN, "--repo", fk == FORGE_GITLAB ? "acme/infra=42" : repo,
                        "--fail-first", "1", NULL) != 0)
        skip();

    /* One 503 first: retryable. */
    forge_init(&f, fk, kind, ff.url, TOKEN);
    st.repo = repo;
    rv_error_clear(&err);
    assert_int_equal(forge_post(&res, &f, &st, &err), RV_EUNAVAIL);
    assert_int_equal(res.outcome, FORGE_RETRY);
    assert_int_equal(res.http_status, 503);
    assert_true(err.retryable);

    /* Accepted, with a description cut to the forge's limit. */
    for (size_t i = 0; i < 100; i++)
        memcpy(longdesc + 3 * i, "\xe2\x82\xac", 3); /* 100 euro signs */
    memset(longdesc + 300, 'x', 99);
    longdesc[399] = '\0'; /* 199 characters */
    st.description = longdesc;
    st.state = FORGE_FAILURE;
    assert_int_equal(forge_post(&res, &f, &st, &err), 0);
    assert_int_equal(res.outcome, FORGE_OK);
    assert_int_equal(res.http_status, 201);

    /* Pending twice: GitLab refuses the second, reeve treats it as done. */
    st.context = "reeve/apply";
    st.state = FORGE_PENDING;
    st.description = "applying";
    assert_int_equal(forge_post(&res, &f, &st, &err), 0);
    st.description = "applying (2 of 3)";
    assert_int_equal(forge_post(&res, &f, &st, &err), 0);

    json_t *list = fakeforge_list(&ff, "statuses");
    assert_non_null(list);
    assert_int_equal(json_array_size(list), fk == FORGE_GITLAB ? 2 : 3);
    json_t *s0 = json_array_get(list, 0);
    assert_string_equal(jstr(s0, "repo"), fk == FORGE_GITLAB ? "acme/infra" : repo);
    assert_string_equal(jstr(s0, "sha"), SHA);
    assert_string_equal(jstr(s0, "context"), "reeve/plan");
    assert_string_equal(jstr(s0, "state"), fk == FORGE_GITLAB ? "failed" : "failure");
    assert_string_equal(jstr(s0, "target_url"), "https://reeve.example/plans/7");
    size_t max = fk == FORGE_GITHUB ? 140 : 255;
    assert_int_equal(forge_utf8_chars(jstr(s0, "description")), max < 199 ? max : 199);
    json_decref(list);

    /* The exact headers arrived. */
    list = fakeforge_list(&ff, "requests");
    json_t *r1 = json_array_get(list, 1);
    json_t *h = json_object_get(r1, "headers");
    assert_string_equal(jstr(r1, "auth"), "ok");
    assert_string_equal(jstr(h, "content-type"), "application/json");
    assert_string_equal(jstr(h, "user-agent"), "reeve/" REEVE_VERSION);
    if (fk == FORGE_GITHUB) {
        assert_string_equal(jstr(h, "accept"), "application/vnd.github+json");
        assert_string_equal(jstr(h, "x-github-api-version"), "2022-11-28");
    }
    json_decref(list);

    /* A wrong token: auth, not retryable. */
    f.token = "wrong-token";
    st.state = FORGE_SUCCESS;
    assert_int_equal(forge_post(&res, &f, &st, &err), RV_EAUTH);
    assert_int_equal(res.outcome, FORGE_AUTH);
    assert_int_equal(res.http_status, 401);
    assert_false(err.retryable);
    assert_null(strstr(err.msg, "wrong-token"));

    /* An unknown repository: permanent, with the forge's words. */
    f.token = TOKEN;
    st.repo = "acme/other";
    assert_int_equal(forge_post(&res, &f, &st, &err), RV_EHTTP);
    assert_int_equal(res.outcome, FORGE_PERMANENT);
    assert_int_equal(res.http_status, 404);
    assert_non_null(strstr(err.msg, "acme/other"));

    fakeforge_stop(&ff);
}

static void test_live_github(void **state)
{
    (void)state;
    live_round("github", FORGE_GITHUB, "acme/infra");
}

static void test_live_gitea(void **state)
{
    (void)state;
    live_round("gitea", FORGE_GITEA, "acme/infra");
}

static void test_live_gitlab_path(void **state)
{
    (void)state;
    live_round("gitlab", FORGE_GITLAB, "acme/infra");
}

static void test_live_gitlab_id(void **state)
{
    (void)state;
    live_round("gitlab", FORGE_GITLAB, "42");
}

static void test_live_unreachable(void **state)
{
    (void)state;
    struct forge f;
    struct forge_result res;
    struct rv_error err;
    struct forge_status st = status_default();

    /* Port 1 on loopback: nothing listens there. */
    forge_init(&f, FORGE_GITHUB, "gh", "http://127.0.0.1:1", TOKEN);
    f.connect_timeout_ms = 2000;
    assert_int_equal(forge_post(&res, &f, &st, &err), RV_EUNAVAIL);
    assert_int_equal(res.outcome, FORGE_RETRY);
    assert_true(err.retryable);
    assert_non_null(strstr(err.msg, "cannot reach forge 'gh'"));
}

int main(void)
{
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_github_request),
        cmocka_unit_test(test_gitea_request),
        cmocka_unit_test(test_gitlab_request),
        cmocka_unit_test(test_text_fit),
        cmocka_unit_test(test_description_truncated_per_forge),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_classify_basic),
        cmocka_unit_test(test_classify_rate_limits),
        cmocka_unit_test(test_classify_gitlab),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_live_github),
        cmocka_unit_test(test_live_gitea),
        cmocka_unit_test(test_live_gitlab_path),
        cmocka_unit_test(test_live_gitlab_id),
        cmocka_unit_test(test_live_unreachable),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
