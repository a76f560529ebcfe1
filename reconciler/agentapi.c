/* agentapi.c - the agent API over lib/httpd. See agentapi.h and docs/dcs.md. */
#include "agentapi.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "crypto.h"
#include "log.h"

#define LOG_C "agentapi"

#define REG_PREFIX "/_reeve/registrations/"
#define REG_NODE_PREFIX "/_reeve/registration-nodes/"
#define TOKEN_PREFIX "/_reeve/agent-tokens/"
#define AGENT_PREFIX "/_reeve/agents/"

/* An authenticated agent. */
struct ident {
    char ns[RV_NAME_MAX + 1];
    char cluster[RV_NAME_MAX + 1];
    char node[RV_OBSERVED_NODE_NAME_MAX + 1];
    char scope[RV_DCS_KEY_MAX + 1]; /* "/clusters/<ns>/<cluster>/" */
    char owner[RV_DCS_OWNER_MAX + 1];
};

/* A change answered once it is on disk. */
struct parked {
    struct parked *next;
    struct httpd_req *req;
    uint64_t seq;
    int status;
    char *body;
    bool secret; /* wipe body when done */
};

struct watch {
    struct agentapi *a;
    struct httpd_req *req;
    uint64_t id;
    uint64_t after;
    char prefix[RV_DCS_KEY_MAX + 1];
    struct watch *next, *prev;
};

struct agentapi {
    uv_loop_t *loop;
    struct dcs *dcs;
    agentapi_report_fn on_report;
    void *payload;
    uv_timer_t timer;
    uv_work_t work;
    struct dcs_batch *batch;
    struct rv_error batch_err;
    int batch_rc;
    bool writing;
    bool closing; /* handlers answer 503 */
    bool close_called;
    bool timer_closed;
    struct parked *parked, **parked_tail;
    struct watch *watches;
    size_t nwatches;
    agentapi_closed_fn closed;
    void *closed_payload;
    struct agentapi_backup_hooks hooks; /* all NULL: backup routes answer 503 */
};

/* --- responses --- */

static void respond_json(struct httpd_req *req, int status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text == NULL) {
        httpd_respond_text(req, 500, "out of memory");
    } else {
        httpd_respond(req, status, "application/json", text, strlen(text));
        free(text);
    }
    json_decref(j);
}

static void respond_error(struct httpd_req *req, int status, const char *msg)
{
    respond_json(req, status, json_pack("{s:s}", "error", msg));
}

static int http_status_of(int rc)
{
    switch (rc) {
    case RV_EINVAL:
    case RV_EPARSE:
        return 400;
    case RV_EAUTH:
        return 401;
    case RV_ENOTFOUND:
        return 404;
    case RV_ELIMIT:
        return 429;
    case RV_EBUSY:
    case RV_EUNAVAIL:
        return 503;
    default:
        return 500;
    }
}

/* --- the writer: batches of DCS changes on a worker thread --- */

static void answer_durable(struct agentapi *a)
{
    uint64_t durable = dcs_durable_seq(a->dcs);
    struct parked **pp = &a->parked;
    while (*pp != NULL) {
        struct parked *p = *pp;
        if (p->seq > durable) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        httpd_respond(p->req, p->status, "application/json", p->body, strlen(p->body));
        if (p->secret)
            crypto_wipe(p->body, strlen(p->body));
        free(p->body);
        free(p);
    }
    a->parked_tail = pp;
    while (*a->parked_tail != NULL)
        a->parked_tail = &(*a->parked_tail)->next;
}

static void write_work(uv_work_t *w)
{
    struct agentapi *a = w->data;
    a->batch_rc = dcs_batch_write(a->batch, &a->batch_err);
}

static void writer_kick(struct agentapi *a);
static void finish_close(struct agentapi *a);

static void write_after(uv_work_t *w, int status)
{
    struct agentapi *a = w->data;
    int rc = status < 0 ? RV_ECANCELED : a->batch_rc;
    if (rc < 0)
        log_error(LOG_C, "cannot write dcs changes to disk: %s (retrying)",
                  status < 0 ? "canceled" : a->batch_err.msg);
    dcs_batch_done(a->dcs, a->batch, rc);
    a->batch = NULL;
    a->writing = false;
    answer_durable(a);
    if (a->close_called) {
        finish_close(a);
        return;
    }
    /* after a failure the next tick retries, so a broken disk is not spun on */
    if (rc == 0)
        writer_kick(a);
}

static void writer_kick(struct agentapi *a)
{
    if (a->writing || dcs_durable_seq(a->dcs) >= dcs_pending_seq(a->dcs))
        return;
    if (dcs_batch_take(&a->batch, a->dcs) < 0 || a->batch == NULL)
        return;
    a->writing = true;
    a->work.data = a;
    rv_error_clear(&a->batch_err);
    if (uv_queue_work(a->loop, &a->work, write_work, write_after) != 0) {
        dcs_batch_done(a->dcs, a->batch, RV_EIO);
        a->batch = NULL;
        a->writing = false;
    }
}

/* Answer req with body once the DCS's current changes are durable. */
static void respond_durable(struct agentapi *a, struct httpd_req *req, int status, json_t *j,
                            bool secret)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        httpd_respond_text(req, 500, "out of memory");
        return;
    }
    uint64_t seq = dcs_pending_seq(a->dcs);
    if (dcs_durable_seq(a->dcs) >= seq) {
        httpd_respond(req, status, "application/json", text, strlen(text));
        goto wipe;
    }
    struct parked *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        httpd_respond_text(req, 500, "out of memory");
        goto wipe;
    }
    httpd_req_defer(req);
    p->req = req;
    p->seq = seq;
    p->status = status;
    p->body = text;
    p->secret = secret;
    *a->parked_tail = p;
    a->parked_tail = &p->next;
    writer_kick(a);
    return;
wipe:
    if (secret)
        crypto_wipe(text, strlen(text));
    free(text);
}

static void on_timer(uv_timer_t *t)
{
    struct agentapi *a = t->data;
    dcs_tick(a->dcs, (int64_t)uv_now(a->loop));
    writer_kick(a);
}

/* --- request parsing --- */

/* Find name in a query string and percent-decode its value into out.
 * Returns 1 when found, 0 when absent, RV_EINVAL when malformed or long. */
static int query_get(char *out, size_t cap, const char *query, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        if (end == NULL)
            end = p + strlen(p);
        if ((size_t)(end - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t o = 0;
            for (const char *s = p + nlen + 1; s < end; s++) {
                int c = (unsigned char)*s;
                if (c == '%') {
                    if (end - s < 3 || crypto_hex_digit(s[1]) < 0 || crypto_hex_digit(s[2]) < 0)
                        return RV_EINVAL;
                    c = crypto_hex_digit(s[1]) * 16 + crypto_hex_digit(s[2]);
                    s += 2;
                }
                if (c == 0 || o + 1 >= cap)
                    return RV_EINVAL;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return 1;
        }
        p = *end == '&' ? end + 1 : end;
    }
    return 0;
}

static int parse_u64(uint64_t *out, const char *s)
{
    uint64_t v = 0;
    if (*s == '\0')
        return RV_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return RV_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static bool dns_label_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RV_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

static bool node_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RV_OBSERVED_NODE_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Parse a JSON object body; 400 answered on failure (returns NULL). */
static json_t *body_object(struct httpd_req *req)
{
    json_error_t jerr;
    json_t *j = NULL;
    char msg[RV_ERROR_MSG_MAX];
    if (req->body_len > RV_AGENTAPI_BODY_MAX) {
        snprintf(msg, sizeof(msg), "body is %zu bytes; at most %d allowed", req->body_len,
                 RV_AGENTAPI_BODY_MAX);
        respond_error(req, 413, msg);
        return NULL;
    }
    j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        snprintf(msg, sizeof(msg), "body is not valid JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        respond_error(req, 400, msg);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        respond_error(req, 400, "body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Every member of obj is one of the NULL-terminated names. */
static int fields_known(const json_t *obj, const char *const *names, const char *what,
                        struct rv_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        bool ok = false;
        for (size_t i = 0; names[i] != NULL; i++)
            if (strcmp(k, names[i]) == 0)
                ok = true;
        if (!ok) {
            bool printable = true;
            for (const char *p = k; *p != '\0'; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    printable = false;
            return printable
                       ? rv_error_set(err, RV_EINVAL, false, "%s: unknown field '%.64s'", what, k)
                       : rv_error_set(err, RV_EINVAL, false,
                                      "%s: unknown field with control characters in its "
                                      "name",
                                      what);
        }
    }
    return 0;
}

static int get_string(const char **out, const json_t *obj, const char *name, bool required,
                      size_t max, const char *what, struct rv_error *err)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (v == NULL)
        return required
                   ? rv_error_set(err, RV_EINVAL, false, "%s: field '%s' is required", what, name)
                   : 0;
    if (!json_is_string(v))
        return rv_error_set(err, RV_EINVAL, false, "%s: field '%s' must be a string", what, name);
    if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: field '%s' must be at most %zu bytes without NUL", what, name,
                            max);
    *out = json_string_value(v);
    return 0;
}

/* A non-negative integer; *out left as is when absent and optional. */
static int get_uint(int64_t *out, const json_t *obj, const char *name, bool required,
                    const char *what, struct rv_error *err)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL)
        return required
                   ? rv_error_set(err, RV_EINVAL, false, "%s: field '%s' is required", what, name)
                   : 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return rv_error_set(err, RV_EINVAL, false, "%s: field '%s' must be a non-negative integer",
                            what, name);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* --- authentication --- */

static void token_digest_key(char *out, size_t cap, const char *prefix, const char *token_hex)
{
    char digest[CRYPTO_SHA256_HEX_SIZE];
    if (crypto_sha256_hex(digest, token_hex, strlen(token_hex)) < 0)
        digest[0] = '\0';
    snprintf(out, cap, "%s%s", prefix, digest);
    crypto_wipe(digest, sizeof(digest));
}

/* Read the bearer token into out (hex of RV_AGENTAPI_TOKEN_BYTES). */
static int bearer(char out[AGENTAPI_TOKEN_HEX_SIZE], const struct httpd_req *req, const char **why)
{
    const char *h = httpd_req_header(req, "Authorization");
    if (h == NULL) {
        *why = "no Authorization header";
        return RV_EAUTH;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        *why = "Authorization is not a Bearer token";
        return RV_EAUTH;
    }
    h += 7;
    size_t n = strlen(h);
    if (n != 2 * RV_AGENTAPI_TOKEN_BYTES) {
        *why = "malformed token";
        return RV_EAUTH;
    }
    for (size_t i = 0; i < n; i++) {
        if (crypto_hex_digit(h[i]) < 0) {
            *why = "malformed token";
            return RV_EAUTH;
        }
        out[i] = (char)(h[i] >= 'A' && h[i] <= 'F' ? h[i] - 'A' + 'a' : h[i]);
    }
    out[n] = '\0';
    return 0;
}

/* The token record under prefix: checks the stored digest in constant time
 * and returns the parsed record (json_decref it) or NULL. */
static json_t *token_record(const struct dcs *dcs, const char *prefix, const char *token_hex,
                            const struct dcs_kv **out_kv)
{
    char key[RV_DCS_KEY_MAX + 1];
    uint8_t want[CRYPTO_SHA256_LEN], have[CRYPTO_SHA256_LEN];
    size_t have_len = 0;
    json_t *rec = NULL;
    token_digest_key(key, sizeof(key), prefix, token_hex);
    const struct dcs_kv *kv = dcs_get(dcs, key);
    if (kv == NULL)
        goto out;
    rec = json_loadb(kv->value, kv->value_len, 0, NULL);
    const char *stored = json_string_value(json_object_get(rec, "sha256"));
    if (stored == NULL || crypto_sha256(want, token_hex, strlen(token_hex)) < 0 ||
        crypto_hex_decode(have, &have_len, sizeof(have), stored, strlen(stored)) < 0 ||
        have_len != sizeof(have) || !crypto_equal(want, have, sizeof(want))) {
        json_decref(rec);
        rec = NULL;
        goto out;
    }
    if (out_kv != NULL)
        *out_kv = kv;
out:
    crypto_wipe(key, sizeof(key));
    return rec;
}

static void ident_fill(struct ident *id, const char *ns, const char *cluster, const char *node)
{
    snprintf(id->ns, sizeof(id->ns), "%s", ns);
    snprintf(id->cluster, sizeof(id->cluster), "%s", cluster);
    snprintf(id->node, sizeof(id->node), "%s", node);
    snprintf(id->scope, sizeof(id->scope), "/clusters/%s/%s/", ns, cluster);
    snprintf(id->owner, sizeof(id->owner), "%s/%s/%s", ns, cluster, node);
}

/* Authenticate an agent; answers 401 itself (returns false). */
static bool authenticate(struct agentapi *a, struct httpd_req *req, struct ident *id)
{
    char token[AGENTAPI_TOKEN_HEX_SIZE];
    const char *why = "unknown or revoked token";
    json_t *rec = NULL;
    bool ok = false;
    if (a->closing) {
        respond_error(req, 503, "the server is shutting down; retry shortly");
        return false;
    }
    if (bearer(token, req, &why) == 0)
        rec = token_record(a->dcs, TOKEN_PREFIX, token, NULL);
    crypto_wipe(token, sizeof(token));
    if (rec != NULL) {
        const char *ns = json_string_value(json_object_get(rec, "namespace"));
        const char *cl = json_string_value(json_object_get(rec, "cluster"));
        const char *node = json_string_value(json_object_get(rec, "node"));
        if (ns != NULL && cl != NULL && node != NULL) {
            ident_fill(id, ns, cl, node);
            ok = true;
        }
        json_decref(rec);
    }
    if (!ok) {
        log_warn(LOG_C, "%s %s from %s rejected (401): %s", req->method, req->path, req->remote,
                 why);
        httpd_req_add_header(req, "WWW-Authenticate", "Bearer");
        respond_error(req, 401,
                      "authentication required: send 'Authorization: Bearer "
                      "<agent token>' from registration");
    }
    return ok;
}

/* Is key (or prefix) inside the agent's cluster? Answers 400/403 itself. */
static bool in_scope(struct httpd_req *req, const struct ident *id, const char *key, bool prefix)
{
    struct rv_error err;
    if (dcs_key_check(key, prefix, &err) < 0) {
        respond_error(req, 400, err.msg);
        return false;
    }
    if (strncmp(key, id->scope, strlen(id->scope)) != 0) {
        char msg[2 * (RV_DCS_KEY_MAX + 1) + 96];
        log_warn(LOG_C, "agent %s at %s: %s %s on '%s' refused (403): outside its cluster",
                 id->owner, req->remote, req->method, req->path, key);
        snprintf(msg, sizeof(msg), "'%.*s' is outside this agent's cluster; use keys under '%s'",
                 RV_DCS_KEY_MAX, key, id->scope);
        respond_error(req, 403, msg);
        return false;
    }
    return true;
}

/* The session exists and belongs to the agent. Answers itself. */
static bool session_mine(struct agentapi *a, struct httpd_req *req, const struct ident *id,
                         uint64_t session)
{
    const char *owner;
    char msg[128];
    if (dcs_session_info(&owner, NULL, a->dcs, session) < 0) {
        snprintf(msg, sizeof(msg),
                 "session %" PRIu64 " does not exist or has expired; grant a "
                 "new one",
                 session);
        respond_error(req, 404, msg);
        return false;
    }
    if (strcmp(owner, id->owner) != 0) {
        log_warn(LOG_C, "agent %s at %s: use of session %" PRIu64 " of another node refused",
                 id->owner, req->remote, session);
        snprintf(msg, sizeof(msg), "session %" PRIu64 " belongs to another node", session);
        respond_error(req, 403, msg);
        return false;
    }
    return true;
}

/* --- JSON of keys and events --- */

static json_t *kv_json(const struct dcs_kv *kv, const char *type)
{
    json_t *o = json_object();
    json_t *v =
        kv->value != NULL ? json_loadb(kv->value, kv->value_len, JSON_DECODE_ANY, NULL) : NULL;
    if (o == NULL)
        goto fail;
    if (type != NULL && json_object_set_new(o, "type", json_string(type)) < 0)
        goto fail;
    if (json_object_set_new(o, "key", json_string(kv->key)) < 0 ||
        (kv->value != NULL &&
         json_object_set_new(o, "value", v != NULL ? v : json_string(kv->value)) < 0) ||
        json_object_set_new(o, "create_revision", json_integer((json_int_t)kv->create_rev)) < 0 ||
        json_object_set_new(o, "mod_revision", json_integer((json_int_t)kv->mod_rev)) < 0 ||
        json_object_set_new(o, "version", json_integer((json_int_t)kv->version)) < 0 ||
        json_object_set_new(o, "session", json_integer((json_int_t)kv->session)) < 0) {
        v = NULL;
        goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

static int range_add(const struct dcs_kv *kv, void *payload)
{
    json_t *o = kv_json(kv, NULL);
    if (o == NULL || json_array_append_new(payload, o) < 0)
        return RV_ENOMEM;
    return 0;
}

static void event_add(const struct dcs_event *ev, void *payload)
{
    json_t *o = kv_json(&ev->kv, ev->type == DCS_EVENT_PUT ? "put" : "delete");
    if (o != NULL)
        json_array_append_new(payload, o);
}

/* A JSON value as compact text for the DCS, size-checked. */
static char *value_text(const json_t *v, struct rv_error *err)
{
    /* canonical text (sorted keys), so value comparisons do not depend on
     * the order a client wrote an object's members in */
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (s == NULL) {
        rv_error_set(err, RV_ENOMEM, false, "out of memory");
        return NULL;
    }
    if (strlen(s) > RV_DCS_VALUE_MAX) {
        rv_error_set(err, RV_EINVAL, false, "value is %zu bytes as JSON; at most %d allowed",
                     strlen(s), RV_DCS_VALUE_MAX);
        free(s);
        return NULL;
    }
    return s;
}

/* --- routes: registration --- */

static void h_register(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    char token[AGENTAPI_TOKEN_HEX_SIZE] = "";
    char agent_token[AGENTAPI_TOKEN_HEX_SIZE] = "";
    uint8_t raw[RV_AGENTAPI_TOKEN_BYTES];
    char digest[CRYPTO_SHA256_HEX_SIZE];
    char reg_key[RV_DCS_KEY_MAX + 1], node_key[RV_DCS_KEY_MAX + 1];
    char tok_key[RV_DCS_KEY_MAX + 1], agent_key[RV_DCS_KEY_MAX + 1];
    char old_tok_key[RV_DCS_KEY_MAX + 1];
    const char *why = "unknown or used registration token";
    const struct dcs_kv *reg_kv = NULL;
    json_t *rec = NULL, *body = NULL, *resp = NULL;
    char *tok_val = NULL, *agent_val = NULL;
    struct rv_error err;
    static const char *const fields[] = {"cluster", "node", "address", NULL};
    const char *cl, *node, *address;

    if (a->closing) {
        respond_error(req, 503, "the server is shutting down; retry shortly");
        return;
    }
    if (bearer(token, req, &why) == 0)
        rec = token_record(a->dcs, REG_PREFIX, token, &reg_kv);
    if (rec == NULL) {
        log_warn(LOG_C, "registration from %s rejected (401): %s", req->remote, why);
        httpd_req_add_header(req, "WWW-Authenticate", "Bearer");
        respond_error(req, 401,
                      "registration needs 'Authorization: Bearer <registration "
                      "token>'; the token is unknown or was used already");
        goto out;
    }
    token_digest_key(reg_key, sizeof(reg_key), REG_PREFIX, token);
    body = body_object(req);
    if (body == NULL)
        goto out;
    if (fields_known(body, fields, "register", &err) < 0 ||
        get_string(&cl, body, "cluster", true, 2 * RV_NAME_MAX + 1, "register", &err) < 0 ||
        get_string(&node, body, "node", true, RV_OBSERVED_NODE_NAME_MAX, "register", &err) < 0 ||
        get_string(&address, body, "address", true, 255, "register", &err) < 0) {
        respond_error(req, 400, err.msg);
        goto out;
    }
    {
        const char *slash = strchr(cl, '/');
        char ns_part[RV_NAME_MAX + 2];
        size_t nl = slash != NULL ? (size_t)(slash - cl) : 0;
        bool ok = slash != NULL && nl <= RV_NAME_MAX && node_name_ok(node);
        if (ok) {
            memcpy(ns_part, cl, nl);
            ns_part[nl] = '\0';
            ok = dns_label_ok(ns_part) && dns_label_ok(slash + 1);
        }
        if (!ok) {
            respond_error(req, 400,
                          "register: 'cluster' must be <namespace>/<name> (DNS labels) "
                          "and 'node' a node name of letters, digits, '-', '_', '.'");
            goto out;
        }
    }
    const char *r_ns = json_string_value(json_object_get(rec, "namespace"));
    const char *r_cl = json_string_value(json_object_get(rec, "cluster"));
    const char *r_node = json_string_value(json_object_get(rec, "node"));
    char want_cl[2 * RV_NAME_MAX + 2];
    snprintf(want_cl, sizeof(want_cl), "%s/%s", r_ns != NULL ? r_ns : "", r_cl != NULL ? r_cl : "");
    if (r_ns == NULL || r_cl == NULL || r_node == NULL || strcmp(cl, want_cl) != 0 ||
        strcmp(node, r_node) != 0) {
        log_warn(LOG_C,
                 "registration from %s as %s/%s refused (403): the token was issued for "
                 "%s/%s",
                 req->remote, cl, node, want_cl, r_node != NULL ? r_node : "?");
        respond_error(req, 403, "this registration token was issued for another cluster or node");
        goto out;
    }
    for (const char *p = address; *p != '\0'; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            respond_error(req, 400, "register: field 'address' must be host:port without spaces");
            goto out;
        }
    }
    if (address[0] == '\0') {
        respond_error(req, 400, "register: field 'address' must not be empty");
        goto out;
    }

    if (crypto_random(raw, sizeof(raw)) < 0 ||
        crypto_hex_encode(agent_token, sizeof(agent_token), raw, sizeof(raw)) < 0 ||
        crypto_sha256_hex(digest, agent_token, strlen(agent_token)) < 0) {
        respond_error(req, 500, "cannot make a token");
        goto out;
    }
    snprintf(tok_key, sizeof(tok_key), "%s%s", TOKEN_PREFIX, digest);
    snprintf(agent_key, sizeof(agent_key), "%s%s/%s/%s", AGENT_PREFIX, r_ns, r_cl, r_node);
    snprintf(node_key, sizeof(node_key), "%s%s/%s/%s", REG_NODE_PREFIX, r_ns, r_cl, r_node);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "sha256", digest, "namespace", r_ns, "cluster", r_cl,
                          "node", r_node);
    tok_val = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    j = json_pack("{s:s,s:s}", "token_sha256", digest, "address", address);
    agent_val = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (tok_val == NULL || agent_val == NULL) {
        respond_error(req, 500, "out of memory");
        goto out;
    }

    /* one transaction: the registration token is used exactly once */
    struct dcs_cmp cmp = {.type = DCS_CMP_MOD_REV, .key = reg_key, .mod_rev = reg_kv->mod_rev};
    struct dcs_op ops[5];
    size_t nops = 0;
    ops[nops++] = (struct dcs_op){.type = DCS_OP_DELETE, .key = reg_key};
    ops[nops++] = (struct dcs_op){.type = DCS_OP_DELETE, .key = node_key};
    ops[nops++] = (struct dcs_op){.type = DCS_OP_PUT, .key = tok_key, .value = tok_val};
    ops[nops++] = (struct dcs_op){.type = DCS_OP_PUT, .key = agent_key, .value = agent_val};
    const struct dcs_kv *prev = dcs_get(a->dcs, agent_key);
    if (prev != NULL) {
        json_t *pj = json_loadb(prev->value, prev->value_len, 0, NULL);
        const char *old = json_string_value(json_object_get(pj, "token_sha256"));
        if (old != NULL && strlen(old) == CRYPTO_SHA256_HEX_SIZE - 1 && strcmp(old, digest) != 0) {
            snprintf(old_tok_key, sizeof(old_tok_key), "%s%s", TOKEN_PREFIX, old);
            ops[nops++] = (struct dcs_op){.type = DCS_OP_DELETE, .key = old_tok_key};
        }
        json_decref(pj);
    }
    struct dcs_txn txn = {.cmp = &cmp, .ncmp = 1, .success = ops, .nsuccess = nops};
    bool won = false;
    int rc = dcs_txn(&won, NULL, a->dcs, &txn, &err);
    if (rc < 0) {
        log_error(LOG_C, "registration of %s/%s from %s failed: %s", cl, node, req->remote,
                  err.msg);
        respond_error(req, http_status_of(rc), err.msg);
        goto out;
    }
    if (!won) {
        respond_error(req, 401, "the registration token was used already");
        goto out;
    }
    log_info(LOG_C, "agent %s/%s registered from %s (address %s)", cl, node, req->remote, address);
    resp = json_pack("{s:s,s:s,s:s}", "agent_token", agent_token, "cluster", cl, "node", node);
    respond_durable(a, req, 200, resp, true);
out:
    crypto_wipe(token, sizeof(token));
    crypto_wipe(agent_token, sizeof(agent_token));
    crypto_wipe(raw, sizeof(raw));
    free(tok_val);
    free(agent_val);
    json_decref(body);
    json_decref(rec);
}

static int registration_put(char out[AGENTAPI_TOKEN_HEX_SIZE], const char *given, struct dcs *dcs,
                            const char *namespace_, const char *cluster, const char *node,
                            struct rv_error *err);

int agentapi_registration_issue(char out[AGENTAPI_TOKEN_HEX_SIZE], struct dcs *dcs,
                                const char *namespace_, const char *cluster, const char *node,
                                struct rv_error *err)
{
    return registration_put(out, NULL, dcs, namespace_, cluster, node, err);
}

int agentapi_registration_issue_token(const char *token, struct dcs *dcs, const char *namespace_,
                                      const char *cluster, const char *node, struct rv_error *err)
{
    char out[AGENTAPI_TOKEN_HEX_SIZE];
    size_t len = strlen(token);
    if (len != AGENTAPI_TOKEN_HEX_SIZE - 1 || strspn(token, "0123456789abcdef") != len)
        return rv_error_set(err, RV_EINVAL, false,
                            "a registration token is %d lowercase hex digits",
                            AGENTAPI_TOKEN_HEX_SIZE - 1);
    int rc = registration_put(out, token, dcs, namespace_, cluster, node, err);
    crypto_wipe(out, sizeof(out));
    return rc;
}

static int registration_put(char out[AGENTAPI_TOKEN_HEX_SIZE], const char *given, struct dcs *dcs,
                            const char *namespace_, const char *cluster, const char *node,
                            struct rv_error *err)
{
    uint8_t raw[RV_AGENTAPI_TOKEN_BYTES];
    char digest[CRYPTO_SHA256_HEX_SIZE];
    char reg_key[RV_DCS_KEY_MAX + 1], node_key[RV_DCS_KEY_MAX + 1], old_key[RV_DCS_KEY_MAX + 1];
    char *reg_val = NULL, *node_val = NULL;
    json_t *j = NULL;
    int rc;
    out[0] = '\0';
    if (!dns_label_ok(namespace_) || !dns_label_ok(cluster)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "'%.64s/%.64s' is not a namespace/cluster of DNS labels", namespace_,
                          cluster);
        goto out;
    }
    if (!node_name_ok(node)) {
        rc = rv_error_set(err, RV_EINVAL, false, "'%.128s' is not a valid node name", node);
        goto out;
    }
    if (given != NULL) {
        memcpy(out, given, AGENTAPI_TOKEN_HEX_SIZE);
        rc = 0;
    } else {
        rc = crypto_random(raw, sizeof(raw));
        if (rc == 0)
            rc = crypto_hex_encode(out, AGENTAPI_TOKEN_HEX_SIZE, raw, sizeof(raw));
    }
    if (rc == 0)
        rc = crypto_sha256_hex(digest, out, strlen(out));
    if (rc < 0) {
        rc = rv_error_set(err, rc, false, "cannot make a registration token");
        goto out;
    }
    snprintf(reg_key, sizeof(reg_key), "%s%s", REG_PREFIX, digest);
    snprintf(node_key, sizeof(node_key), "%s%s/%s/%s", REG_NODE_PREFIX, namespace_, cluster, node);
    j = json_pack("{s:s,s:s,s:s,s:s}", "sha256", digest, "namespace", namespace_, "cluster",
                  cluster, "node", node);
    reg_val = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    j = json_pack("{s:s}", "sha256", digest);
    node_val = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    j = NULL;
    if (reg_val == NULL || node_val == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    struct dcs_op ops[3];
    size_t nops = 0;
    const struct dcs_kv *prev = dcs_get(dcs, node_key);
    if (prev != NULL) {
        j = json_loadb(prev->value, prev->value_len, 0, NULL);
        const char *old = json_string_value(json_object_get(j, "sha256"));
        if (old != NULL && strlen(old) == CRYPTO_SHA256_HEX_SIZE - 1 && strcmp(old, digest) != 0) {
            snprintf(old_key, sizeof(old_key), "%s%s", REG_PREFIX, old);
            ops[nops++] = (struct dcs_op){.type = DCS_OP_DELETE, .key = old_key};
        }
    }
    ops[nops++] = (struct dcs_op){.type = DCS_OP_PUT, .key = reg_key, .value = reg_val};
    ops[nops++] = (struct dcs_op){.type = DCS_OP_PUT, .key = node_key, .value = node_val};
    struct dcs_txn txn = {.success = ops, .nsuccess = nops};
    rc = dcs_txn(NULL, NULL, dcs, &txn, err);
out:
    if (rc < 0)
        crypto_wipe(out, AGENTAPI_TOKEN_HEX_SIZE);
    crypto_wipe(raw, sizeof(raw));
    json_decref(j);
    free(reg_val);
    free(node_val);
    return rc;
}

/* --- routes: reports --- */

static void h_report(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct rv_error err;
    json_t *body = NULL;
    char *compact = NULL;
    static const char *const fields[] = {
        "role",     "version", "healthy",          "lag_bytes", "timeline", "engine",
        "position", "ttl_s",   "lag_transactions", "streaming", NULL};
    struct agentapi_report r = {.lag_bytes = -1,
                                .lag_transactions = -1,
                                .streaming = -1,
                                .timeline = -1,
                                .ttl_s = RV_OBSERVED_TTL_DEFAULT_S};
    int rc;

    if (!authenticate(a, req, &id))
        return;
    body = body_object(req);
    if (body == NULL) {
        log_warn(LOG_C, "agent %s at %s: report rejected (400): body is not a JSON object",
                 id.owner, req->remote);
        goto out;
    }
    rc = fields_known(body, fields, "report", &err);
    if (rc == 0)
        rc = get_string(&r.role, body, "role", true, 16, "report", &err);
    if (rc == 0 && strcmp(r.role, "primary") != 0 && strcmp(r.role, "replica") != 0 &&
        strcmp(r.role, "unknown") != 0)
        rc = rv_error_set(&err, RV_EINVAL, false,
                          "report: field 'role' must be one of primary, replica, unknown");
    if (rc == 0)
        rc = get_string(&r.version, body, "version", false, 64, "report", &err);
    if (rc == 0)
        rc = get_string(&r.engine, body, "engine", false, 16, "report", &err);
    if (rc == 0 && r.engine != NULL && strcmp(r.engine, "postgresql") != 0 &&
        strcmp(r.engine, "mariadb") != 0)
        rc = rv_error_set(&err, RV_EINVAL, false,
                          "report: field 'engine' must be one of postgresql, mariadb");
    if (rc == 0)
        rc = get_string(&r.position, body, "position", false, RV_OBSERVED_STRING_MAX, "report",
                        &err);
    if (rc == 0) {
        json_t *h = json_object_get(body, "healthy");
        if (h == NULL)
            rc = rv_error_set(&err, RV_EINVAL, false, "report: field 'healthy' is required");
        else if (!json_is_boolean(h))
            rc = rv_error_set(&err, RV_EINVAL, false,
                              "report: field 'healthy' must be true or false");
        else
            r.healthy = json_is_true(h);
    }
    if (rc == 0)
        rc = get_uint(&r.lag_bytes, body, "lag_bytes", false, "report", &err);
    if (rc == 0)
        rc = get_uint(&r.lag_transactions, body, "lag_transactions", false, "report", &err);
    if (rc == 0) {
        json_t *st = json_object_get(body, "streaming");
        if (st != NULL && !json_is_boolean(st))
            rc = rv_error_set(&err, RV_EINVAL, false,
                              "report: field 'streaming' must be true or false");
        else if (st != NULL)
            r.streaming = json_is_true(st);
    }
    if (rc == 0)
        rc = get_uint(&r.timeline, body, "timeline", false, "report", &err);
    if (rc == 0)
        rc = get_uint(&r.ttl_s, body, "ttl_s", false, "report", &err);
    if (rc == 0 && (r.ttl_s < 1 || r.ttl_s > RV_OBSERVED_TTL_MAX_S))
        rc = rv_error_set(&err, RV_EINVAL, false, "report: field 'ttl_s' must be 1 to %d",
                          RV_OBSERVED_TTL_MAX_S);
    if (rc < 0) {
        log_warn(LOG_C, "agent %s at %s: report rejected (400): %s", id.owner, req->remote,
                 err.msg);
        respond_error(req, 400, err.msg);
        goto out;
    }
    compact = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (compact == NULL) {
        respond_error(req, 500, "out of memory");
        goto out;
    }
    r.namespace_ = id.ns;
    r.cluster = id.cluster;
    r.node = id.node;
    if (r.version == NULL)
        r.version = "";
    if (r.engine == NULL)
        r.engine = "";
    if (r.position == NULL)
        r.position = "";
    r.json = compact;
    if (a->on_report != NULL)
        a->on_report(&r, a->payload);
    respond_json(req, 200, json_pack("{s:b}", "accepted", 1));
out:
    free(compact);
    json_decref(body);
}

/* --- routes: sessions --- */

static void h_session(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct rv_error err;
    json_t *body = NULL;
    static const char *const fields[] = {"ttl_ms", NULL};
    const char *rest = req->path + strlen("/v1/dcs/session");
    int rc;

    if (!authenticate(a, req, &id))
        return;
    if (*rest == '\0') {
        int64_t ttl = 0;
        uint64_t sid;
        body = body_object(req);
        if (body == NULL)
            goto out;
        rc = fields_known(body, fields, "session", &err);
        if (rc == 0)
            rc = get_uint(&ttl, body, "ttl_ms", true, "session", &err);
        if (rc == 0)
            rc = dcs_session_grant(&sid, a->dcs, ttl, id.owner, &err);
        if (rc < 0) {
            respond_error(req, http_status_of(rc), err.msg);
            goto out;
        }
        respond_durable(a, req, 200,
                        json_pack("{s:I,s:I}", "id", (json_int_t)sid, "ttl_ms", (json_int_t)ttl),
                        false);
        goto out;
    }
    /* /<id>/keepalive or /<id>/revoke */
    char idtext[24];
    const char *slash = strchr(rest + 1, '/');
    uint64_t sid;
    if (rest[0] != '/' || slash == NULL || (size_t)(slash - rest - 1) >= sizeof(idtext)) {
        respond_error(req, 404, "use /v1/dcs/session/<id>/keepalive or /revoke");
        goto out;
    }
    memcpy(idtext, rest + 1, (size_t)(slash - rest - 1));
    idtext[slash - rest - 1] = '\0';
    if (parse_u64(&sid, idtext) < 0) {
        respond_error(req, 400, "session id must be a decimal number");
        goto out;
    }
    if (strcmp(slash, "/keepalive") != 0 && strcmp(slash, "/revoke") != 0) {
        respond_error(req, 404, "use /v1/dcs/session/<id>/keepalive or /revoke");
        goto out;
    }
    if (!session_mine(a, req, &id, sid))
        goto out;
    int64_t ttl = 0;
    dcs_session_info(NULL, &ttl, a->dcs, sid);
    if (strcmp(slash, "/keepalive") == 0) {
        dcs_session_keepalive(a->dcs, sid, NULL);
        respond_json(req, 200,
                     json_pack("{s:I,s:I}", "id", (json_int_t)sid, "ttl_ms", (json_int_t)ttl));
        goto out;
    }
    rc = dcs_session_revoke(a->dcs, sid, &err);
    if (rc < 0) {
        respond_error(req, http_status_of(rc), err.msg);
        goto out;
    }
    respond_durable(
        a, req, 200,
        json_pack("{s:I,s:I}", "id", (json_int_t)sid, "revision", (json_int_t)dcs_revision(a->dcs)),
        false);
out:
    json_decref(body);
}

/* --- routes: keys --- */

static void h_kv_get(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    char key[RV_DCS_KEY_MAX + 1], prefix[RV_DCS_KEY_MAX + 1];
    json_t *kvs = NULL;
    if (!authenticate(a, req, &id))
        return;
    int hk = query_get(key, sizeof(key), req->query, "key");
    int hp = query_get(prefix, sizeof(prefix), req->query, "prefix");
    if (hk < 0 || hp < 0 || hk + hp != 1) {
        respond_error(req, 400,
                      "give exactly one of ?key= or ?prefix= (URL-encoded, at most "
                      "384 bytes)");
        return;
    }
    if (!in_scope(req, &id, hk ? key : prefix, hp == 1))
        return;
    kvs = json_array();
    if (kvs == NULL)
        goto nomem;
    if (hk) {
        const struct dcs_kv *kv = dcs_get(a->dcs, key);
        if (kv != NULL && range_add(kv, kvs) < 0)
            goto nomem;
    } else if (dcs_range(a->dcs, prefix, range_add, kvs) != 0) {
        goto nomem;
    }
    respond_json(req, 200,
                 json_pack("{s:I,s:o}", "revision", (json_int_t)dcs_revision(a->dcs), "kvs", kvs));
    kvs = NULL; /* taken by "o" */
    goto out;
nomem:
    respond_error(req, 500, "out of memory");
out:
    json_decref(kvs);
}

/* Put op from {key, value, session?}; answers errors itself. */
static bool parse_put(struct dcs_op *op, char **value_out, struct agentapi *a,
                      struct httpd_req *req, const struct ident *id, const json_t *obj,
                      const char *what)
{
    static const char *const fields[] = {"key", "value", "session", NULL};
    struct rv_error err;
    const char *key;
    int64_t session = 0;
    json_t *v = json_object_get(obj, "value");
    *value_out = NULL;
    if (fields_known(obj, fields, what, &err) < 0 ||
        get_string(&key, obj, "key", true, RV_DCS_KEY_MAX, what, &err) < 0 ||
        get_uint(&session, obj, "session", false, what, &err) < 0) {
        respond_error(req, 400, err.msg);
        return false;
    }
    if (v == NULL) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s: field 'value' is required", what);
        respond_error(req, 400, msg);
        return false;
    }
    if (!in_scope(req, id, key, false))
        return false;
    if (session != 0 && !session_mine(a, req, id, (uint64_t)session))
        return false;
    *value_out = value_text(v, &err);
    if (*value_out == NULL) {
        respond_error(req, http_status_of(err.code), err.msg);
        return false;
    }
    *op = (struct dcs_op){
        .type = DCS_OP_PUT, .key = key, .value = *value_out, .session = (uint64_t)session};
    return true;
}

static void h_kv_put(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct rv_error err;
    struct dcs_op op;
    char *value = NULL;
    uint64_t rev;
    json_t *body = NULL;
    if (!authenticate(a, req, &id))
        return;
    body = body_object(req);
    if (body == NULL || !parse_put(&op, &value, a, req, &id, body, "put"))
        goto out;
    int rc = dcs_put(&rev, a->dcs, op.key, op.value, op.session, &err);
    if (rc < 0) {
        respond_error(req, http_status_of(rc), err.msg);
        goto out;
    }
    respond_durable(a, req, 200, json_pack("{s:I}", "revision", (json_int_t)rev), false);
out:
    free(value);
    json_decref(body);
}

static void h_kv_delete(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct rv_error err;
    char key[RV_DCS_KEY_MAX + 1];
    bool deleted;
    uint64_t rev;
    if (!authenticate(a, req, &id))
        return;
    if (query_get(key, sizeof(key), req->query, "key") != 1) {
        respond_error(req, 400, "give ?key= (URL-encoded, at most 384 bytes)");
        return;
    }
    if (!in_scope(req, &id, key, false))
        return;
    int rc = dcs_delete(&deleted, &rev, a->dcs, key, &err);
    if (rc < 0) {
        respond_error(req, http_status_of(rc), err.msg);
        return;
    }
    respond_durable(a, req, 200,
                    json_pack("{s:I,s:b}", "revision", (json_int_t)rev, "deleted", deleted), false);
}

/* --- routes: transactions --- */

struct txn_parse {
    struct dcs_cmp cmp[RV_DCS_TXN_CMP_MAX];
    struct dcs_op ops[2][RV_DCS_TXN_OPS_MAX];
    size_t nops[2];
    char *cmp_values[RV_DCS_TXN_CMP_MAX];
    char *values[2][RV_DCS_TXN_OPS_MAX];
    size_t ncmp;
};

static void txn_parse_release(struct txn_parse *t)
{
    for (size_t i = 0; i < RV_DCS_TXN_CMP_MAX; i++)
        free(t->cmp_values[i]);
    for (size_t b = 0; b < 2; b++)
        for (size_t i = 0; i < RV_DCS_TXN_OPS_MAX; i++)
            free(t->values[b][i]);
}

static bool parse_compare(struct txn_parse *t, struct agentapi *a, struct httpd_req *req,
                          const struct ident *id, const json_t *arr)
{
    static const char *const fields[] = {"key", "exists", "mod_revision", "value", "session", NULL};
    struct rv_error err;
    char what[64];
    (void)a;
    if (arr == NULL)
        return true;
    if (!json_is_array(arr) || json_array_size(arr) > RV_DCS_TXN_CMP_MAX) {
        snprintf(what, sizeof(what), "txn: field 'compare' must be an array of at most %d",
                 RV_DCS_TXN_CMP_MAX);
        respond_error(req, 400, what);
        return false;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *c = json_array_get(arr, i);
        struct dcs_cmp *out = &t->cmp[i];
        const char *key;
        snprintf(what, sizeof(what), "txn: compare[%zu]", i);
        if (!json_is_object(c) || fields_known(c, fields, what, &err) < 0 ||
            get_string(&key, c, "key", true, RV_DCS_KEY_MAX, what, &err) < 0) {
            if (!json_is_object(c))
                rv_error_set(&err, RV_EINVAL, false, "%s must be an object", what);
            respond_error(req, 400, err.msg);
            return false;
        }
        if (!in_scope(req, id, key, false))
            return false;
        out->key = key;
        if (json_object_size(c) != 2) {
            rv_error_set(&err, RV_EINVAL, false,
                         "%s needs 'key' and exactly one of exists, mod_revision, value, session",
                         what);
            respond_error(req, 400, err.msg);
            return false;
        }
        json_t *v;
        int64_t n = 0;
        if ((v = json_object_get(c, "exists")) != NULL) {
            if (!json_is_boolean(v)) {
                rv_error_set(&err, RV_EINVAL, false, "%s: field 'exists' must be true or false",
                             what);
                respond_error(req, 400, err.msg);
                return false;
            }
            out->type = json_is_true(v) ? DCS_CMP_EXISTS : DCS_CMP_NOT_EXISTS;
        } else if (json_object_get(c, "mod_revision") != NULL) {
            if (get_uint(&n, c, "mod_revision", true, what, &err) < 0) {
                respond_error(req, 400, err.msg);
                return false;
            }
            out->type = DCS_CMP_MOD_REV;
            out->mod_rev = (uint64_t)n;
        } else if (json_object_get(c, "session") != NULL) {
            if (get_uint(&n, c, "session", true, what, &err) < 0) {
                respond_error(req, 400, err.msg);
                return false;
            }
            out->type = DCS_CMP_SESSION;
            out->session = (uint64_t)n;
        } else {
            t->cmp_values[i] = value_text(json_object_get(c, "value"), &err);
            if (t->cmp_values[i] == NULL) {
                respond_error(req, http_status_of(err.code), err.msg);
                return false;
            }
            out->type = DCS_CMP_VALUE;
            out->value = t->cmp_values[i];
        }
        t->ncmp = i + 1;
    }
    return true;
}

static bool parse_ops(struct txn_parse *t, size_t branch, struct agentapi *a, struct httpd_req *req,
                      const struct ident *id, const json_t *arr, const char *name)
{
    struct rv_error err;
    char what[64];
    if (arr == NULL)
        return true;
    if (!json_is_array(arr) || json_array_size(arr) > RV_DCS_TXN_OPS_MAX) {
        snprintf(what, sizeof(what), "txn: field '%s' must be an array of at most %d", name,
                 RV_DCS_TXN_OPS_MAX);
        respond_error(req, 400, what);
        return false;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *o = json_array_get(arr, i);
        const json_t *put = json_object_get(o, "put");
        const json_t *del = json_object_get(o, "delete");
        snprintf(what, sizeof(what), "txn: %s[%zu]", name, i);
        if (!json_is_object(o) || json_object_size(o) != 1 || (put == NULL && del == NULL)) {
            rv_error_set(&err, RV_EINVAL, false,
                         "%s must be {\"put\": {...}} or "
                         "{\"delete\": {\"key\": ...}}",
                         what);
            respond_error(req, 400, err.msg);
            return false;
        }
        struct dcs_op *op = &t->ops[branch][i];
        if (put != NULL) {
            if (!json_is_object(put)) {
                rv_error_set(&err, RV_EINVAL, false, "%s.put must be an object", what);
                respond_error(req, 400, err.msg);
                return false;
            }
            if (!parse_put(op, &t->values[branch][i], a, req, id, put, what))
                return false;
        } else {
            static const char *const dfields[] = {"key", NULL};
            const char *key;
            if (!json_is_object(del) || fields_known(del, dfields, what, &err) < 0 ||
                get_string(&key, del, "key", true, RV_DCS_KEY_MAX, what, &err) < 0) {
                if (!json_is_object(del))
                    rv_error_set(&err, RV_EINVAL, false, "%s.delete must be an object", what);
                respond_error(req, 400, err.msg);
                return false;
            }
            if (!in_scope(req, id, key, false))
                return false;
            *op = (struct dcs_op){.type = DCS_OP_DELETE, .key = key};
        }
        t->nops[branch] = i + 1;
    }
    return true;
}

static void h_txn(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct rv_error err;
    static const char *const fields[] = {"compare", "success", "failure", NULL};
    struct txn_parse *t = NULL;
    json_t *body = NULL;
    bool ok;
    uint64_t rev;
    if (!authenticate(a, req, &id))
        return;
    body = body_object(req);
    if (body == NULL)
        goto out;
    if (fields_known(body, fields, "txn", &err) < 0) {
        respond_error(req, 400, err.msg);
        goto out;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        respond_error(req, 500, "out of memory");
        goto out;
    }
    if (!parse_compare(t, a, req, &id, json_object_get(body, "compare")) ||
        !parse_ops(t, 0, a, req, &id, json_object_get(body, "success"), "success") ||
        !parse_ops(t, 1, a, req, &id, json_object_get(body, "failure"), "failure"))
        goto out;
    struct dcs_txn txn = {.cmp = t->cmp,
                          .ncmp = t->ncmp,
                          .success = t->ops[0],
                          .nsuccess = t->nops[0],
                          .failure = t->ops[1],
                          .nfailure = t->nops[1]};
    int rc = dcs_txn(&ok, &rev, a->dcs, &txn, &err);
    if (rc < 0) {
        respond_error(req, http_status_of(rc), err.msg);
        goto out;
    }
    respond_durable(a, req, 200,
                    json_pack("{s:b,s:I}", "succeeded", ok, "revision", (json_int_t)rev), false);
out:
    if (t != NULL)
        txn_parse_release(t);
    free(t);
    json_decref(body);
}

/* --- routes: watch --- */

/* Answer a watch with the events after w->after, or compaction. */
static void watch_answer(struct agentapi *a, struct httpd_req *req, json_t *events, int n)
{
    if (n == RV_ESTALE) {
        json_decref(events);
        respond_json(req, 410,
                     json_pack("{s:s,s:b,s:I}", "error",
                               "events after that revision are no longer kept; re-read with "
                               "GET /v1/dcs/kv?prefix= and watch from its revision",
                               "compacted", 1, "revision", (json_int_t)dcs_revision(a->dcs)));
        return;
    }
    respond_json(
        req, 200,
        json_pack("{s:I,s:o}", "revision", (json_int_t)dcs_revision(a->dcs), "events", events));
}

static void watch_unlink(struct agentapi *a, struct watch *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        a->watches = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    a->nwatches--;
}

static void on_watch(struct dcs *d, int status, void *payload)
{
    struct watch *w = payload;
    struct agentapi *a = w->a;
    watch_unlink(a, w);
    if (status == RV_ECANCELED) {
        respond_error(w->req, 503, "the server is shutting down; watch again");
    } else {
        json_t *events = json_array();
        int n = events != NULL ? dcs_changes(d, w->prefix, w->after, event_add, events) : 0;
        if (events == NULL)
            respond_error(w->req, 500, "out of memory");
        else
            watch_answer(a, w->req, events, n);
    }
    free(w);
}

static void h_watch(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct rv_error err;
    char prefix[RV_DCS_KEY_MAX + 1], num[24];
    uint64_t after, timeout = RV_AGENTAPI_WATCH_DEFAULT_MS;
    int r;
    if (!authenticate(a, req, &id))
        return;
    if (query_get(prefix, sizeof(prefix), req->query, "prefix") != 1) {
        respond_error(req, 400, "give ?prefix= (URL-encoded)");
        return;
    }
    if (!in_scope(req, &id, prefix, true))
        return;
    if (query_get(num, sizeof(num), req->query, "after") != 1 || parse_u64(&after, num) < 0) {
        respond_error(req, 400, "give ?after=<revision> (a decimal number)");
        return;
    }
    r = query_get(num, sizeof(num), req->query, "timeout_ms");
    if (r < 0 || (r == 1 && (parse_u64(&timeout, num) < 0 || timeout < 1 ||
                             timeout > RV_AGENTAPI_WATCH_MAX_MS))) {
        char msg[96];
        snprintf(msg, sizeof(msg), "timeout_ms must be 1 to %d", RV_AGENTAPI_WATCH_MAX_MS);
        respond_error(req, 400, msg);
        return;
    }
    json_t *events = json_array();
    if (events == NULL) {
        respond_error(req, 500, "out of memory");
        return;
    }
    int n = dcs_changes(a->dcs, prefix, after, event_add, events);
    if (n != 0) {
        watch_answer(a, req, events, n);
        return;
    }
    json_decref(events);
    if (a->nwatches >= RV_AGENTAPI_WATCHERS_MAX) {
        log_warn(LOG_C, "agent %s at %s: watch refused: %d watches are waiting", id.owner,
                 req->remote, RV_AGENTAPI_WATCHERS_MAX);
        httpd_req_add_header(req, "Retry-After", "1");
        respond_error(req, 503, "too many watches are waiting; retry shortly");
        return;
    }
    struct watch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        respond_error(req, 500, "out of memory");
        return;
    }
    w->a = a;
    w->req = req;
    w->after = after;
    snprintf(w->prefix, sizeof(w->prefix), "%s", prefix);
    if (dcs_watch_add(&w->id, a->dcs, prefix, after, (int64_t)uv_now(a->loop) + (int64_t)timeout,
                      on_watch, w, &err) < 0) {
        free(w);
        respond_error(req, http_status_of(err.code), err.msg);
        return;
    }
    httpd_req_defer(req);
    w->next = a->watches;
    if (a->watches != NULL)
        a->watches->prev = w;
    a->watches = w;
    a->nwatches++;
}

/* --- routes: backups (docs/backups.md) --- */

void agentapi_set_backup_hooks(struct agentapi *a, const struct agentapi_backup_hooks *hooks)
{
    if (hooks != NULL)
        a->hooks = *hooks;
    else
        memset(&a->hooks, 0, sizeof(a->hooks));
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RV_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int agentapi_time_parse(int64_t *out_ms, const char *s, bool zone_optional)
{
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (s == NULL || strlen(s) < 19 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return RV_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
            if (n >= 9)
                return RV_EINVAL;
        }
        if (n == 0)
            return RV_EINVAL;
        for (; n < 3; n++)
            ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return RV_EINVAL;
        p += 6;
    } else if (!zone_optional || *p != '\0') {
        return RV_EINVAL;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 60)
        return RV_EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return RV_EINVAL;
    if (sec == 60) /* a leap second reads as the next second */
        sec = 59, ms = 999;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= (int64_t)sign * (oh * 3600 + om * 60);
    *out_ms = t * 1000 + ms;
    return 0;
}

/* Field rules of a backup record. */
enum ftype { F_STR, F_STR_NULL, F_UINT_NULL, F_BOOL, F_STRS, F_TIME, F_TIME_NULL, F_VERIFY };

struct fspec {
    const char *name;
    enum ftype type;
    bool required;
    size_t max;
    const char *const *one_of; /* NULL-terminated, or NULL */
};

static const char *const rec_types[] = {"full", "incremental", NULL};
static const char *const rec_methods[] = {"pg_basebackup", "external", "mariabackup", NULL};
static const char *const rec_statuses[] = {"running", "succeeded", "failed", NULL};
static const char *const rec_compressions[] = {"zstd", "none", NULL};

static const struct fspec record_fields[] = {
    {"backup_id", F_STR, true, RV_BACKUPS_ID_MAX, NULL},
    {"set_id", F_STR_NULL, false, RV_BACKUPS_ID_MAX, NULL},
    {"cluster", F_STR, true, 2 * RV_NAME_MAX + 1, NULL},
    {"node", F_STR_NULL, false, RV_OBSERVED_NODE_NAME_MAX, NULL},
    {"type", F_STR, true, 16, rec_types},
    {"method", F_STR_NULL, false, 16, rec_methods},
    {"params", F_STRS, false, RV_BACKUPS_STRING_MAX, NULL},
    {"schedule", F_STR, true, RV_BACKUPS_STRING_MAX, NULL},
    {"status", F_STR, true, 16, rec_statuses},
    {"error", F_STR_NULL, false, RV_BACKUPS_ERROR_MAX, NULL},
    {"started_at", F_TIME, true, 40, NULL},
    {"ended_at", F_TIME_NULL, false, 40, NULL},
    {"consistent_at", F_TIME_NULL, false, 40, NULL},
    {"duration_ms", F_UINT_NULL, false, 0, NULL},
    {"location", F_STR_NULL, false, RV_BACKUPS_STRING_MAX, NULL},
    {"name", F_STR_NULL, false, RV_BACKUPS_STRING_MAX, NULL},
    {"size", F_UINT_NULL, false, 0, NULL},
    {"raw_size", F_UINT_NULL, false, 0, NULL},
    {"checksum", F_STR_NULL, false, 64, NULL},
    {"encrypted", F_BOOL, false, 0, NULL},
    {"compression", F_STR_NULL, false, 16, rec_compressions},
    {"retention_days", F_UINT_NULL, false, 0, NULL},
    {"schemas", F_STRS, false, RV_BACKUPS_STRING_MAX, NULL},
    {"start_lsn", F_STR_NULL, false, 32, NULL},
    {"end_lsn", F_STR_NULL, false, 32, NULL},
    {"timeline", F_UINT_NULL, false, 0, NULL},
    {"verify", F_VERIFY, false, 0, NULL},
    /* MariaDB: an incremental backup's parent in its chain, and the GTID
     * position a backup holds. */
    {"parent", F_STR_NULL, false, RV_BACKUPS_ID_MAX, NULL},
    {"gtid", F_STR_NULL, false, RV_BACKUPS_STRING_MAX, NULL},
};

static bool printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RV_BACKUPS_ID_MAX ||
        !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
          (s[0] >= '0' && s[0] <= '9')))
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int check_string(const json_t *v, const struct fspec *f, const char *what,
                        struct rv_error *err)
{
    const char *s = json_string_value(v);
    if (json_string_length(v) > f->max || strlen(s) != json_string_length(v) || !printable(s))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: field '%s' must be at most %zu printable bytes", what, f->name,
                            f->max);
    if (f->one_of != NULL) {
        for (size_t i = 0; f->one_of[i] != NULL; i++)
            if (strcmp(s, f->one_of[i]) == 0)
                return 0;
        char list[128] = "";
        for (size_t i = 0; f->one_of[i] != NULL; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                     f->one_of[i]);
        return rv_error_set(err, RV_EINVAL, false, "%s: field '%s' must be one of %s", what,
                            f->name, list);
    }
    return 0;
}

static int check_verify(const json_t *v, const char *what, struct rv_error *err)
{
    static const char *const names[] = {"at", "kind", "status", "error", NULL};
    static const char *const kinds[] = {"checksum", "restore", NULL};
    static const char *const st[] = {"ok", "failed", NULL};
    static const struct fspec fs[] = {
        {"at", F_TIME, true, 40, NULL},
        {"kind", F_STR, true, 16, kinds},
        {"status", F_STR, true, 16, st},
        {"error", F_STR_NULL, false, RV_BACKUPS_ERROR_MAX, NULL},
    };
    int64_t t;
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return rv_error_set(err, RV_EINVAL, false, "%s: field 'verify' must be null or an object",
                            what);
    int rc = fields_known(v, names, "record.verify", err);
    for (size_t i = 0; rc == 0 && i < sizeof(fs) / sizeof(fs[0]); i++) {
        json_t *f = json_object_get(v, fs[i].name);
        if (f == NULL && fs[i].required)
            return rv_error_set(err, RV_EINVAL, false, "%s: field 'verify.%s' is required", what,
                                fs[i].name);
        if (f == NULL || (json_is_null(f) && fs[i].type == F_STR_NULL))
            continue;
        if (!json_is_string(f))
            return rv_error_set(err, RV_EINVAL, false, "%s: field 'verify.%s' must be a string",
                                what, fs[i].name);
        rc = check_string(f, &fs[i], what, err);
        if (rc == 0 && fs[i].type == F_TIME &&
            agentapi_time_parse(&t, json_string_value(f), false) != 0)
            rc = rv_error_set(err, RV_EINVAL, false,
                              "%s: field 'verify.at' must be an RFC 3339 time in UTC", what);
    }
    return rc;
}

static int check_field(const json_t *rec, const struct fspec *f, const char *what,
                       struct rv_error *err)
{
    json_t *v = json_object_get(rec, f->name);
    int64_t t;
    if (v == NULL)
        return f->required ? rv_error_set(err, RV_EINVAL, false, "%s: field '%s' is required", what,
                                          f->name)
                           : 0;
    switch (f->type) {
    case F_STR_NULL:
    case F_TIME_NULL:
        if (json_is_null(v))
            return 0;
        /* fall through */
    case F_STR:
    case F_TIME:
        if (!json_is_string(v))
            return rv_error_set(err, RV_EINVAL, false, "%s: field '%s' must be a string%s", what,
                                f->name, f->type == F_STR || f->type == F_TIME ? "" : " or null");
        if (check_string(v, f, what, err) != 0)
            return err->code;
        if ((f->type == F_TIME || f->type == F_TIME_NULL) &&
            agentapi_time_parse(&t, json_string_value(v), false) != 0)
            return rv_error_set(err, RV_EINVAL, false,
                                "%s: field '%s' must be an RFC 3339 time such as "
                                "2026-11-21T08:05:01.000Z",
                                what, f->name);
        return 0;
    case F_UINT_NULL:
        if (json_is_null(v))
            return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return rv_error_set(err, RV_EINVAL, false,
                                "%s: field '%s' must be a non-negative integer or null", what,
                                f->name);
        return 0;
    case F_BOOL:
        if (!json_is_boolean(v))
            return rv_error_set(err, RV_EINVAL, false, "%s: field '%s' must be true or false", what,
                                f->name);
        return 0;
    case F_STRS: {
        size_t i;
        json_t *item;
        if (!json_is_array(v) || json_array_size(v) > RV_BACKUPS_LIST_ITEMS_MAX)
            return rv_error_set(err, RV_EINVAL, false,
                                "%s: field '%s' must be an array of at most %d strings", what,
                                f->name, RV_BACKUPS_LIST_ITEMS_MAX);
        json_array_foreach(v, i, item)
        {
            if (!json_is_string(item) || check_string(item, f, what, err) != 0)
                return rv_error_set(err, RV_EINVAL, false,
                                    "%s: field '%s' must hold strings of at most %zu printable "
                                    "bytes",
                                    what, f->name, f->max);
        }
        return 0;
    }
    case F_VERIFY:
        return check_verify(v, what, err);
    }
    return 0;
}

static int check_record(int *out_status, const json_t *rec, size_t index, const char *cluster,
                        struct rv_error *err)
{
    char what[48];
    const char *names[sizeof(record_fields) / sizeof(record_fields[0]) + 1];
    snprintf(what, sizeof(what), "records[%zu]", index);
    if (!json_is_object(rec))
        return rv_error_set(err, RV_EINVAL, false, "%s must be an object", what);
    for (size_t i = 0; i < sizeof(record_fields) / sizeof(record_fields[0]); i++)
        names[i] = record_fields[i].name;
    names[sizeof(record_fields) / sizeof(record_fields[0])] = NULL;
    int rc = fields_known(rec, names, what, err);
    for (size_t i = 0; rc == 0 && i < sizeof(record_fields) / sizeof(record_fields[0]); i++)
        rc = check_field(rec, &record_fields[i], what, err);
    if (rc != 0)
        return rc;
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    const char *set = json_string_value(json_object_get(rec, "set_id"));
    if (!id_ok(id) || (set != NULL && !id_ok(set)))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: backup_id and set_id are letters, digits, '.', '_' and '-'", what);
    const char *sched = json_string_value(json_object_get(rec, "schedule"));
    if (strcmp(sched, "scheduled") != 0 && strcmp(sched, "manual") != 0 &&
        strcmp(sched, "final") != 0 && (strncmp(sched, "request:", 8) != 0 || !id_ok(sched + 8)))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: field 'schedule' must be scheduled, manual, final or "
                            "request:<id>",
                            what);
    const char *sum = json_string_value(json_object_get(rec, "checksum"));
    if (sum != NULL && (strlen(sum) != 64 || strspn(sum, "0123456789abcdef") != 64))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: field 'checksum' must be 64 lowercase hex digits (SHA-256)", what);
    const char *status = json_string_value(json_object_get(rec, "status"));
    if (strcmp(status, "succeeded") == 0 &&
        (json_string_value(json_object_get(rec, "ended_at")) == NULL ||
         json_string_value(json_object_get(rec, "name")) == NULL))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: a succeeded record needs 'ended_at' and 'name'", what);
    const char *c = json_string_value(json_object_get(rec, "cluster"));
    if (strcmp(c, cluster) != 0) {
        *out_status = 403;
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: cluster '%s' is not this agent's cluster '%s'; an agent reports "
                            "only its own backups",
                            what, c, cluster);
    }
    return 0;
}

/* A log line may hold any printable UTF-8 but no control character: no
 * C0, DEL, or C1 (U+0080..U+009F, which some terminals obey). */
static bool line_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; p[i] != '\0'; i++)
        if (p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f))
            return false;
    return true;
}

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static const struct fspec log_fields[] = {
    {"backup_id", F_STR, true, RV_BACKUPS_ID_MAX, NULL},
    {"at", F_TIME, true, 40, NULL},
    {"level", F_STR, true, 16, log_levels},
    {"line", F_STR, true, RV_BACKUPS_LOG_LINE_MAX, NULL},
};

static int check_log(const json_t *line, size_t index, struct rv_error *err)
{
    static const char *const names[] = {"backup_id", "at", "level", "line", NULL};
    char what[48];
    snprintf(what, sizeof(what), "logs[%zu]", index);
    if (!json_is_object(line))
        return rv_error_set(err, RV_EINVAL, false, "%s must be an object", what);
    int rc = fields_known(line, names, what, err);
    for (size_t i = 0; rc == 0 && i < sizeof(log_fields) / sizeof(log_fields[0]); i++)
        rc = check_field(line, &log_fields[i], what, err);
    if (rc != 0)
        return rc;
    if (!id_ok(json_string_value(json_object_get(line, "backup_id"))))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: backup_id is letters, digits, '.', '_' and '-'", what);
    if (!line_ok(json_string_value(json_object_get(line, "line"))))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s: field 'line' must not hold control characters", what);
    return 0;
}

/* "logs" (optional): at most RV_BACKUPS_POST_LOGS_MAX lines. Whether each
 * line's backup is the agent's own is decided where the records are
 * (backups_ingest). */
static int check_logs(const json_t *logs, struct rv_error *err)
{
    size_t i;
    json_t *line;
    int rc = 0;
    if (logs == NULL)
        return 0;
    if (!json_is_array(logs) || json_array_size(logs) > RV_BACKUPS_POST_LOGS_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "backups: field 'logs' must be an array of at most %d lines",
                            RV_BACKUPS_POST_LOGS_MAX);
    json_array_foreach(logs, i, line)
    {
        if ((rc = check_log(line, i, err)) != 0)
            return rc;
    }
    return 0;
}

int agentapi_backups_check(int *out_status, const json_t *body, const char *cluster,
                           struct rv_error *err)
{
    static const char *const top[] = {"records", "logs", "wal", NULL};
    static const char *const walf[] = {"last_segment", "last_archived_at", NULL};
    *out_status = 400;
    if (!json_is_object(body))
        return rv_error_set(err, RV_EINVAL, false, "body must be a JSON object");
    int rc = fields_known(body, top, "backups", err);
    if (rc != 0)
        return rc;
    json_t *recs = json_object_get(body, "records");
    if (!json_is_array(recs) || json_array_size(recs) > RV_BACKUPS_POST_RECORDS_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "backups: field 'records' must be an array of at most %d records",
                            RV_BACKUPS_POST_RECORDS_MAX);
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec)
    {
        if ((rc = check_record(out_status, rec, i, cluster, err)) != 0)
            return rc;
    }
    if ((rc = check_logs(json_object_get(body, "logs"), err)) != 0)
        return rc;
    json_t *wal = json_object_get(body, "wal");
    if (wal == NULL || json_is_null(wal))
        return 0;
    if (!json_is_object(wal))
        return rv_error_set(err, RV_EINVAL, false,
                            "backups: field 'wal' must be null or an object");
    if ((rc = fields_known(wal, walf, "wal", err)) != 0)
        return rc;
    const char *seg = json_string_value(json_object_get(wal, "last_segment"));
    const char *at = json_string_value(json_object_get(wal, "last_archived_at"));
    int64_t t;
    if (seg == NULL || strlen(seg) != 24 || strspn(seg, "0123456789ABCDEF") != 24)
        return rv_error_set(err, RV_EINVAL, false,
                            "wal: field 'last_segment' must be a WAL file name (24 uppercase hex "
                            "digits)");
    if (at == NULL || strlen(at) > 40 || agentapi_time_parse(&t, at, false) != 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "wal: field 'last_archived_at' must be an RFC 3339 time");
    return 0;
}

static void agent_of(struct agentapi_agent *who, char *key, size_t key_size, const struct ident *id)
{
    snprintf(key, key_size, "%s/%s", id->ns, id->cluster);
    who->namespace_ = id->ns;
    who->cluster = id->cluster;
    who->node = id->node;
    who->key = key;
}

static void h_config(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct agentapi_agent who;
    char key[2 * RV_NAME_MAX + 2];
    if (!authenticate(a, req, &id))
        return;
    if (a->hooks.config == NULL) {
        respond_error(req, 503, "this reconciler does not serve agent configurations");
        return;
    }
    agent_of(&who, key, sizeof(key), &id);
    a->hooks.config(req, &who, a->hooks.payload);
}

static void h_backups(struct httpd_req *req, void *payload)
{
    struct agentapi *a = payload;
    struct ident id;
    struct agentapi_agent who;
    struct rv_error err;
    json_error_t jerr;
    char key[2 * RV_NAME_MAX + 2];
    char msg[RV_ERROR_MSG_MAX];
    int status = 400;
    if (!authenticate(a, req, &id))
        return;
    if (a->hooks.records == NULL) {
        respond_error(req, 503, "this reconciler does not take backup records");
        return;
    }
    if (req->body_len > RV_BACKUPS_POST_BODY_MAX) {
        snprintf(msg, sizeof(msg), "body is %zu bytes; at most %d allowed: send fewer records",
                 req->body_len, RV_BACKUPS_POST_BODY_MAX);
        respond_error(req, 413, msg);
        return;
    }
    agent_of(&who, key, sizeof(key), &id);
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        snprintf(msg, sizeof(msg), "body is not valid JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        log_warn(LOG_C, "agent %s at %s: backups rejected (400): %s", id.owner, req->remote, msg);
        respond_error(req, 400, msg);
        return;
    }
    if (agentapi_backups_check(&status, body, key, &err) != 0) {
        log_warn(LOG_C, "agent %s at %s: backups rejected (%d): %s", id.owner, req->remote, status,
                 err.msg);
        respond_error(req, status, err.msg);
        json_decref(body);
        return;
    }
    a->hooks.records(req, &who, body, a->hooks.payload);
    json_decref(body);
}

/* --- life cycle --- */

int agentapi_new(struct agentapi **out, uv_loop_t *loop, struct httpd *h, struct dcs *dcs,
                 agentapi_report_fn on_report, void *payload, struct rv_error *err)
{
    static const struct {
        const char *method, *path;
        httpd_handler_fn fn;
    } routes[] = {
        {"POST", "/v1/agents/register", h_register},
        {"POST", "/v1/agents/report", h_report},
        {"POST", "/v1/dcs/session", h_session},
        {"GET", "/v1/dcs/kv", h_kv_get},
        {"PUT", "/v1/dcs/kv", h_kv_put},
        {"DELETE", "/v1/dcs/kv", h_kv_delete},
        {"POST", "/v1/dcs/txn", h_txn},
        {"GET", "/v1/dcs/watch", h_watch},
        {"GET", "/v1/agents/config", h_config},
        {"POST", "/v1/agents/backups", h_backups},
    };
    int rc = 0;
    struct agentapi *a = calloc(1, sizeof(*a));
    *out = NULL;
    if (a == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "agentapi: out of memory");
    a->loop = loop;
    a->dcs = dcs;
    a->on_report = on_report;
    a->payload = payload;
    a->parked_tail = &a->parked;
    if (uv_timer_init(loop, &a->timer) != 0) {
        free(a);
        return rv_error_set(err, RV_EIO, false, "agentapi: cannot create the expiry timer");
    }
    a->timer.data = a;
    /* from here on a exists for the caller: routes may point at it */
    *out = a;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        rc = httpd_route(h, routes[i].method, routes[i].path, routes[i].fn, a);
        if (rc < 0) {
            a->closing = true;
            return rv_error_set(err, rc, false, "agentapi: cannot add route %s %s",
                                routes[i].method, routes[i].path);
        }
    }
    uv_timer_start(&a->timer, on_timer, RV_DCS_TICK_MS, RV_DCS_TICK_MS);
    return 0;
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct agentapi *a = handle->data;
    a->timer_closed = true;
    if (a->closed != NULL)
        a->closed(a->closed_payload);
}

static void finish_close(struct agentapi *a)
{
    struct rv_error err;
    /* the last changes are written on the loop thread: the server is
     * stopping and this is one short transaction */
    if (dcs_flush(a->dcs, &err) < 0)
        log_error(LOG_C, "cannot write the last dcs changes at shutdown: %s", err.msg);
    answer_durable(a);
    while (a->parked != NULL) {
        struct parked *p = a->parked;
        a->parked = p->next;
        respond_error(p->req, 503, "the change could not be written to disk");
        if (p->secret)
            crypto_wipe(p->body, strlen(p->body));
        free(p->body);
        free(p);
    }
    a->parked_tail = &a->parked;
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
}

void agentapi_close(struct agentapi *a, agentapi_closed_fn closed, void *payload)
{
    assert(!a->close_called);
    a->close_called = true;
    a->closing = true;
    a->closed = closed;
    a->closed_payload = payload;
    while (a->watches != NULL)
        dcs_watch_cancel(a->dcs, a->watches->id);
    uv_timer_stop(&a->timer);
    if (!a->writing)
        finish_close(a);
}

void agentapi_free(struct agentapi *a)
{
    if (a == NULL)
        return;
    assert(a->timer_closed);
    free(a);
}
