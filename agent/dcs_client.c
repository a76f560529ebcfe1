/* dcs_client.c - a blocking client of the agent API (see dcs_client.h). */
#include "dcs_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"

struct reply {
    struct buf body;
    bool too_big;
};

static size_t collect(char *data, size_t size, size_t n, void *payload)
{
    struct reply *r = payload;
    size_t len = size * n;
    if (r->body.len + len > RV_AGENT_REPLY_MAX) {
        r->too_big = true;
        return 0;
    }
    if (buf_append(&r->body, data, len) != 0)
        return 0;
    return len;
}

int dcs_client_init(struct dcs_client *c, const char *url, long timeout_ms, struct rv_error *err)
{
    memset(c, 0, sizeof(*c));
    if (strlen(url) > RV_AGENT_URL_MAX)
        return rv_error_set(err, RV_EINVAL, false, "reconciler URL over %d characters",
                            RV_AGENT_URL_MAX);
    snprintf(c->url, sizeof(c->url), "%s", url);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : RV_AGENT_HTTP_TIMEOUT_MS;
    return 0;
}

void dcs_client_release(struct dcs_client *c)
{
    explicit_bzero(c->token, sizeof(c->token));
}

int dcs_client_set_token(struct dcs_client *c, const char *token, struct rv_error *err)
{
    size_t len = strlen(token);
    if (len != DCS_CLIENT_TOKEN_SIZE - 1 || strspn(token, "0123456789abcdef") != len)
        return rv_error_set(err, RV_EPARSE, false, "an agent token is 64 lowercase hex digits");
    memcpy(c->token, token, len + 1);
    return 0;
}

static int progress(void *payload, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
    const atomic_bool *cancel = payload;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(cancel) ? 1 : 0;
}

static const char *status_hint(long status)
{
    switch (status) {
    case 401:
        return "the agent token was refused (register again with a new registration token)";
    case 403:
        return "forbidden";
    case 404:
        return "not found";
    case 410:
        return "history compacted";
    case 503:
        return "the reconciler is unavailable";
    default:
        return "unexpected answer";
    }
}

/* One request. body (borrowed) may be NULL; bearer NULL uses c->token.
 * *out is the parsed JSON answer of a 2xx (NULL allowed when not wanted). */
static int request(json_t **out, struct dcs_client *c, const char *method, const char *path,
                   json_t *body, const char *bearer, long timeout_ms, struct rv_error *err)
{
    CURL *h = NULL;
    struct curl_slist *hl = NULL;
    struct reply r = {BUF_INIT, false};
    char *text = NULL;
    char url[RV_AGENT_URL_MAX + RV_DCS_KEY_MAX * 3 + 128];
    char auth[RV_AGENTAPI_AUTH_MAX];
    long status = 0;
    int rc = 0;
    if (out != NULL)
        *out = NULL;
    auth[0] = '\0';
    h = curl_easy_init();
    if (h == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "cannot create an HTTP handle");
        goto out;
    }
    if ((size_t)snprintf(url, sizeof(url), "%s%s", c->url, path) >= sizeof(url)) {
        rc = rv_error_set(err, RV_EINVAL, false, "request URL too long");
        goto out;
    }
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "cannot encode a request");
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        hl = curl_slist_append(hl, "Content-Type: application/json");
    }
    const char *tok = bearer != NULL ? bearer : c->token;
    if (tok[0] != '\0') {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
        struct curl_slist *n = curl_slist_append(hl, auth);
        if (n == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
        hl = n;
    }
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->cancel != NULL) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)c->cancel);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (cc == CURLE_ABORTED_BY_CALLBACK)
            rc = rv_error_set(err, RV_ECANCELED, false, "%s %s: canceled", method, path);
        else if (r.too_big)
            rc = rv_error_set(err, RV_ELIMIT, false, "%s %s: answer over %d bytes", method, path,
                              RV_AGENT_REPLY_MAX);
        else
            rc = rv_error_set(err, cc == CURLE_OPERATION_TIMEDOUT ? RV_ETIMEOUT : RV_EUNAVAIL, true,
                              "cannot reach the reconciler: %s %s: %s", method, path,
                              curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        int code = RV_EPROTO;
        if (status == 401 || status == 403)
            code = RV_EAUTH;
        else if (status == 404)
            code = RV_ENOTFOUND;
        else if (status == 410)
            code = RV_ESTALE;
        else if (status == 503)
            code = RV_EUNAVAIL;
        json_t *j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "error"));
        rc = rv_error_set(err, code, status == 503, "%s %s: %ld: %s", method, path, status,
                          m != NULL ? m : status_hint(status));
        json_decref(j);
        goto out;
    }
    if (out != NULL) {
        *out = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
        if (*out == NULL) {
            rc = rv_error_set(err, RV_EPROTO, false, "%s %s: the answer is not JSON", method, path);
            goto out;
        }
    }
out:
    explicit_bzero(auth, sizeof(auth));
    curl_slist_free_all(hl);
    if (h != NULL)
        curl_easy_cleanup(h);
    free(text);
    buf_release(&r.body);
    return rc;
}

static int get_u64(uint64_t *out, json_t *obj, const char *name, struct rv_error *err)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return rv_error_set(err, RV_EPROTO, false, "the answer has no valid '%s'", name);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int dcs_client_register(struct dcs_client *c, const char *registration_token, const char *cluster,
                        const char *node, const char *address, struct rv_error *err)
{
    json_t *body = json_pack("{s:s,s:s,s:s}", "cluster", cluster, "node", node, "address", address);
    json_t *ans = NULL;
    int rc;
    if (body == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = request(&ans, c, "POST", "/v1/agents/register", body, registration_token,
                 RV_AGENT_HTTP_TIMEOUT_MS, err);
    if (rc != 0)
        goto out;
    const char *tok = json_string_value(json_object_get(ans, "agent_token"));
    if (tok == NULL) {
        rc = rv_error_set(err, RV_EPROTO, false, "registration answered no agent token");
        goto out;
    }
    rc = dcs_client_set_token(c, tok, err);
out:
    json_decref(body);
    json_decref(ans);
    return rc;
}

int dcs_client_session_grant(uint64_t *out_id, struct dcs_client *c, int64_t ttl_ms,
                             struct rv_error *err)
{
    json_t *body = json_pack("{s:I}", "ttl_ms", (json_int_t)ttl_ms);
    json_t *ans = NULL;
    int rc;
    if (body == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = request(&ans, c, "POST", "/v1/dcs/session", body, NULL, c->timeout_ms, err);
    if (rc != 0)
        goto out;
    rc = get_u64(out_id, ans, "id", err);
out:
    json_decref(body);
    json_decref(ans);
    return rc;
}

int dcs_client_session_keepalive(struct dcs_client *c, uint64_t id, struct rv_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/dcs/session/%" PRIu64 "/keepalive", id);
    return request(NULL, c, "POST", path, NULL, NULL, c->timeout_ms, err);
}

int dcs_client_session_revoke(struct dcs_client *c, uint64_t id, struct rv_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/dcs/session/%" PRIu64 "/revoke", id);
    return request(NULL, c, "POST", path, NULL, NULL, c->timeout_ms, err);
}

/* path + "?" + name + "=" + escaped value into out. */
static int query_path(char *out, size_t cap, const char *path, const char *name, const char *value,
                      const char *rest, struct rv_error *err)
{
    char *esc = curl_easy_escape(NULL, value, 0);
    int rc = 0;
    if (esc == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if ((size_t)snprintf(out, cap, "%s?%s=%s%s", path, name, esc, rest) >= cap)
        rc = rv_error_set(err, RV_EINVAL, false, "key '%s' too long", value);
    curl_free(esc);
    return rc;
}

int dcs_client_get(json_t **out, uint64_t *out_rev, struct dcs_client *c, const char *key,
                   struct rv_error *err)
{
    char path[RV_DCS_KEY_MAX * 3 + 64];
    json_t *ans = NULL;
    uint64_t rev = 0;
    int rc;
    *out = NULL;
    rc = query_path(path, sizeof(path), "/v1/dcs/kv", "key", key, "", err);
    if (rc != 0)
        goto out;
    rc = request(&ans, c, "GET", path, NULL, NULL, c->timeout_ms, err);
    if (rc != 0)
        goto out;
    rc = get_u64(&rev, ans, "revision", err);
    if (rc != 0)
        goto out;
    json_t *kvs = json_object_get(ans, "kvs");
    if (!json_is_array(kvs)) {
        rc = rv_error_set(err, RV_EPROTO, false, "the answer has no 'kvs'");
        goto out;
    }
    if (json_array_size(kvs) > 0)
        *out = json_incref(json_array_get(kvs, 0));
    if (out_rev != NULL)
        *out_rev = rev;
out:
    json_decref(ans);
    return rc;
}

int dcs_client_list(json_t **out, struct dcs_client *c, const char *prefix, struct rv_error *err)
{
    char path[RV_DCS_KEY_MAX * 3 + 64];
    json_t *ans = NULL;
    int rc;
    *out = NULL;
    rc = query_path(path, sizeof(path), "/v1/dcs/kv", "prefix", prefix, "", err);
    if (rc == 0)
        rc = request(&ans, c, "GET", path, NULL, NULL, c->timeout_ms, err);
    if (rc != 0)
        goto out;
    json_t *kvs = json_object_get(ans, "kvs");
    if (!json_is_array(kvs)) {
        rc = rv_error_set(err, RV_EPROTO, false, "the answer has no 'kvs'");
        goto out;
    }
    *out = json_incref(kvs);
out:
    json_decref(ans);
    return rc;
}

int dcs_client_put(uint64_t *out_rev, struct dcs_client *c, const char *key, json_t *value,
                   uint64_t session, struct rv_error *err)
{
    json_t *body = json_pack("{s:s,s:O}", "key", key, "value", value);
    json_t *ans = NULL;
    int rc;
    if (body == NULL ||
        (session != 0 &&
         json_object_set_new(body, "session", json_integer((json_int_t)session)) != 0)) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = request(&ans, c, "PUT", "/v1/dcs/kv", body, NULL, c->timeout_ms, err);
    if (rc != 0)
        goto out;
    if (out_rev != NULL)
        rc = get_u64(out_rev, ans, "revision", err);
out:
    json_decref(body);
    json_decref(ans);
    return rc;
}

int dcs_client_delete(bool *out_deleted, struct dcs_client *c, const char *key,
                      struct rv_error *err)
{
    char path[RV_DCS_KEY_MAX * 3 + 64];
    json_t *ans = NULL;
    int rc = query_path(path, sizeof(path), "/v1/dcs/kv", "key", key, "", err);
    if (rc != 0)
        goto out;
    rc = request(&ans, c, "DELETE", path, NULL, NULL, c->timeout_ms, err);
    if (rc != 0)
        goto out;
    if (out_deleted != NULL)
        *out_deleted = json_is_true(json_object_get(ans, "deleted"));
out:
    json_decref(ans);
    return rc;
}

int dcs_client_txn(bool *out_succeeded, uint64_t *out_rev, struct dcs_client *c, json_t *txn,
                   struct rv_error *err)
{
    json_t *ans = NULL;
    int rc = request(&ans, c, "POST", "/v1/dcs/txn", txn, NULL, c->timeout_ms, err);
    if (rc != 0)
        goto out;
    json_t *s = json_object_get(ans, "succeeded");
    if (!json_is_boolean(s)) {
        rc = rv_error_set(err, RV_EPROTO, false, "the answer has no 'succeeded'");
        goto out;
    }
    *out_succeeded = json_is_true(s);
    if (out_rev != NULL)
        rc = get_u64(out_rev, ans, "revision", err);
out:
    json_decref(ans);
    return rc;
}

int dcs_client_create(bool *out_created, struct dcs_client *c, const char *key, json_t *value,
                      uint64_t session, struct rv_error *err)
{
    json_t *put = json_pack("{s:s,s:O}", "key", key, "value", value);
    json_t *txn = NULL;
    int rc;
    if (put != NULL && session != 0 &&
        json_object_set_new(put, "session", json_integer((json_int_t)session)) != 0) {
        json_decref(put);
        put = NULL;
    }
    if (put == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    txn = json_pack("{s:[{s:s,s:b}],s:[{s:o}]}", "compare", "key", key, "exists", 0, "success",
                    "put", put);
    if (txn == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = dcs_client_txn(out_created, NULL, c, txn, err);
out:
    json_decref(txn);
    return rc;
}

int dcs_client_watch(json_t **out_events, uint64_t *out_rev, struct dcs_client *c,
                     const char *prefix, uint64_t after, long wait_ms, struct rv_error *err)
{
    char path[RV_DCS_KEY_MAX * 3 + 128];
    char rest[64];
    json_t *ans = NULL;
    int rc;
    *out_events = NULL;
    if (wait_ms < 0 || wait_ms > RV_AGENTAPI_WATCH_MAX_MS)
        return rv_error_set(err, RV_EINVAL, false, "watch wait must be 0 to %d ms",
                            RV_AGENTAPI_WATCH_MAX_MS);
    snprintf(rest, sizeof(rest), "&after=%" PRIu64 "&timeout_ms=%ld", after, wait_ms);
    rc = query_path(path, sizeof(path), "/v1/dcs/watch", "prefix", prefix, rest, err);
    if (rc != 0)
        goto out;
    rc = request(&ans, c, "GET", path, NULL, NULL, c->timeout_ms + wait_ms, err);
    if (rc != 0)
        goto out;
    rc = get_u64(out_rev, ans, "revision", err);
    if (rc != 0)
        goto out;
    json_t *ev = json_object_get(ans, "events");
    if (!json_is_array(ev)) {
        rc = rv_error_set(err, RV_EPROTO, false, "the answer has no 'events'");
        goto out;
    }
    *out_events = json_incref(ev);
out:
    json_decref(ans);
    return rc;
}

int dcs_client_report(struct dcs_client *c, json_t *report, struct rv_error *err)
{
    return request(NULL, c, "POST", "/v1/agents/report", report, NULL, c->timeout_ms, err);
}

int dcs_client_call(json_t **out, struct dcs_client *c, const char *method, const char *path,
                    json_t *body, struct rv_error *err)
{
    return request(out, c, method, path, body, NULL, c->timeout_ms, err);
}
