#include "webhook.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "crypto.h"
#include "log.h"

#define WEBHOOK_LOG "webhook"

static const char zero_sha[RV_WEBHOOK_SHA_HEX_MAX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

const char *webhook_forge_name(enum webhook_forge forge)
{
    switch (forge) {
    case WEBHOOK_FORGE_GITHUB:
        return "github";
    case WEBHOOK_FORGE_GITEA:
        return "gitea";
    case WEBHOOK_FORGE_GITLAB:
        return "gitlab";
    }
    return "unknown";
}

int webhook_forge_parse(enum webhook_forge *out, const char *name)
{
    static const enum webhook_forge all[] = {WEBHOOK_FORGE_GITHUB, WEBHOOK_FORGE_GITEA,
                                             WEBHOOK_FORGE_GITLAB};
    if (out == NULL || name == NULL)
        return RV_EINVAL;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcasecmp(name, webhook_forge_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return RV_EINVAL;
}

const char *webhook_pr_action_name(enum webhook_pr_action action)
{
    switch (action) {
    case WEBHOOK_PR_OPENED:
        return "opened";
    case WEBHOOK_PR_SYNCHRONIZE:
        return "synchronize";
    case WEBHOOK_PR_REOPENED:
        return "reopened";
    case WEBHOOK_PR_CLOSED:
        return "closed";
    }
    return "unknown";
}

int webhook_http_status(int rc)
{
    switch (rc) {
    case 0:
        return 202;
    case RV_EAUTH:
        return 401;
    case RV_EPARSE:
    case RV_EINVAL:
        return 400;
    case RV_ELIMIT:
        return 413;
    case RV_EBUSY:
        return 503;
    default:
        return 500;
    }
}

/* --- per-forge header names --- */

struct forge_headers {
    const char *event;
    const char *delivery;
    const char *delivery_fallback; /* NULL if none */
};

static struct forge_headers headers_of(enum webhook_forge forge)
{
    switch (forge) {
    case WEBHOOK_FORGE_GITHUB:
        return (struct forge_headers){"X-GitHub-Event", "X-GitHub-Delivery", NULL};
    case WEBHOOK_FORGE_GITEA:
        return (struct forge_headers){"X-Gitea-Event", "X-Gitea-Delivery", NULL};
    case WEBHOOK_FORGE_GITLAB:
        break;
    }
    return (struct forge_headers){"X-Gitlab-Event", "X-Gitlab-Event-UUID", "Idempotency-Key"};
}

static const char *header(const struct webhook_headers *h, const char *name)
{
    return h->get(name, h->payload);
}

/* Printable ASCII without spaces, 1..max characters. */
static bool is_plain_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= max || s[n] <= 0x20 || s[n] >= 0x7f)
            return false;
    return n > 0;
}

/* An event name: 1..max printable characters; GitLab's hold spaces
 * ("Merge Request Hook"). */
static bool is_event_name(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= max || s[n] < 0x20 || s[n] >= 0x7f)
            return false;
    return n > 0;
}

/* --- authenticity --- */

static int verify_hmac_header(enum webhook_forge forge, const char *secret,
                              const struct webhook_headers *hd, const char *body, size_t len,
                              struct rv_error *err)
{
    const char *name = forge == WEBHOOK_FORGE_GITHUB ? "X-Hub-Signature-256" : "X-Gitea-Signature";
    const char *value = header(hd, name);
    uint8_t want[CRYPTO_SHA256_LEN], got[CRYPTO_SHA256_LEN];
    size_t got_len = 0;
    int rc;

    if (value == NULL)
        return rv_error_set(err, RV_EAUTH, false,
                            "%s webhook: missing header '%s'; set a secret on the webhook in "
                            "the forge, the same as reeve's",
                            webhook_forge_name(forge), name);
    if (forge == WEBHOOK_FORGE_GITHUB) {
        if (strncmp(value, "sha256=", 7) != 0)
            return rv_error_set(err, RV_EAUTH, false,
                                "github webhook: header '%s' does not start with 'sha256='", name);
        value += 7;
    }
    if (crypto_hex_decode(got, &got_len, sizeof(got), value, strlen(value)) < 0 ||
        got_len != sizeof(got))
        return rv_error_set(err, RV_EAUTH, false,
                            "%s webhook: header '%s' is not a hex SHA-256 HMAC",
                            webhook_forge_name(forge), name);
    rc = crypto_hmac_sha256(want, secret, strlen(secret), body, len);
    if (rc < 0)
        return rv_error_set(err, rc, true, "%s webhook: cannot compute the HMAC: %s",
                            webhook_forge_name(forge), rv_strerror(rc));
    if (!crypto_equal(want, got, sizeof(want)))
        return rv_error_set(err, RV_EAUTH, false,
                            "%s webhook: header '%s' does not match the body; check that the "
                            "webhook's secret is the one reeve has",
                            webhook_forge_name(forge), name);
    return 0;
}

static int verify_gitlab_token(const char *secret, const struct webhook_headers *hd,
                               struct rv_error *err)
{
    const char *value = header(hd, "X-Gitlab-Token");
    uint8_t a[CRYPTO_SHA256_LEN], b[CRYPTO_SHA256_LEN];
    int rc;

    if (value == NULL)
        return rv_error_set(err, RV_EAUTH, false,
                            "gitlab webhook: missing header 'X-Gitlab-Token'; set the webhook's "
                            "secret token in GitLab, the same as reeve's");
    /* Compare digests so the time taken says nothing about either length. */
    rc = crypto_sha256(a, value, strlen(value));
    if (rc == 0)
        rc = crypto_sha256(b, secret, strlen(secret));
    if (rc < 0)
        return rv_error_set(err, rc, true, "gitlab webhook: cannot hash the token: %s",
                            rv_strerror(rc));
    if (!crypto_equal(a, b, sizeof(a)))
        return rv_error_set(err, RV_EAUTH, false,
                            "gitlab webhook: header 'X-Gitlab-Token' is wrong; check that the "
                            "webhook's secret token is the one reeve has");
    return 0;
}

/* --- JSON fields --- */

struct parse_ctx {
    const char *forge;
    const char *event;
    struct rv_error *err;
};

static json_t *at(json_t *root, const char *path)
{
    char part[64];
    json_t *node = root;

    while (node != NULL && *path != '\0') {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        node = json_is_object(node) ? json_object_get(node, part) : NULL;
        path += n;
        if (*path == '.')
            path++;
    }
    return node;
}

static int missing(const struct parse_ctx *p, const char *path, const char *what)
{
    return rv_error_set(p->err, RV_EINVAL, false,
                        "%s webhook: '%s' payload: field '%s' %s; send the forge's standard "
                        "JSON payload",
                        p->forge, p->event, path, what);
}

/* A string field without control characters, copied into out. */
static int get_text(char *out, size_t out_size, const struct parse_ctx *p, json_t *root,
                    const char *path, bool required)
{
    json_t *v = at(root, path);
    const char *s;
    size_t n;

    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return required ? missing(p, path, "is missing") : 0;
    if (!json_is_string(v))
        return missing(p, path, "is not a string");
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0)
        return required ? missing(p, path, "is empty") : 0;
    if (n >= out_size)
        return rv_error_set(p->err, RV_EINVAL, false,
                            "%s webhook: '%s' payload: field '%s' is %zu bytes, the limit is %zu",
                            p->forge, p->event, path, n, out_size - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return missing(p, path, "has control characters");
    memcpy(out, s, n + 1);
    return 0;
}

/* A commit id: 40 or 64 hex digits, stored lowercase. */
static int get_sha(char *out, const struct parse_ctx *p, json_t *root, const char *path,
                   bool required)
{
    int rc = get_text(out, RV_WEBHOOK_SHA_HEX_MAX + 1, p, root, path, required);
    size_t n;

    if (rc < 0 || out[0] == '\0')
        return rc;
    n = strlen(out);
    if ((n != 40 && n != 64) || strspn(out, "0123456789abcdefABCDEF") != n) {
        out[0] = '\0';
        return missing(p, path, "is not a 40 or 64 digit hex commit id");
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return 0;
}

static int get_id(int64_t *out, const struct parse_ctx *p, json_t *root, const char *path,
                  bool required)
{
    json_t *v = at(root, path);

    *out = 0;
    if (v == NULL || json_is_null(v))
        return required ? missing(p, path, "is missing") : 0;
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return missing(p, path, "is not a positive integer");
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static bool is_zero_sha(const char *sha)
{
    size_t n = strlen(sha);
    return n > 0 && strncmp(sha, zero_sha, n) == 0;
}

static void ignore(struct webhook_event *ev, const char *fmt, const char *arg)
{
    ev->kind = WEBHOOK_IGNORED;
    snprintf(ev->ignored_reason, sizeof(ev->ignored_reason), fmt, arg);
}

static int parse_repo(struct webhook_event *ev, const struct parse_ctx *p, json_t *root)
{
    int rc;
    if (ev->forge == WEBHOOK_FORGE_GITLAB) {
        rc = get_text(ev->repo, sizeof(ev->repo), p, root, "project.path_with_namespace", true);
        if (rc == 0)
            rc = get_id(&ev->repo_id, p, root, "project.id", false);
        if (rc == 0 && ev->repo_id == 0)
            rc = get_id(&ev->repo_id, p, root, "project_id", false);
        return rc;
    }
    rc = get_text(ev->repo, sizeof(ev->repo), p, root, "repository.full_name", true);
    if (rc == 0)
        rc = get_id(&ev->repo_id, p, root, "repository.id", false);
    return rc;
}

static int parse_push(struct webhook_event *ev, const struct parse_ctx *p, json_t *root)
{
    int rc;

    ev->kind = WEBHOOK_PUSH;
    rc = parse_repo(ev, p, root);
    if (rc == 0)
        rc = get_text(ev->push.ref, sizeof(ev->push.ref), p, root, "ref", true);
    if (rc == 0)
        rc = get_sha(ev->push.before, p, root, "before", true);
    if (rc == 0)
        rc = get_sha(ev->push.after, p, root, "after", true);
    if (rc < 0)
        return rc;
    if (strncmp(ev->push.ref, "refs/", 5) != 0)
        return missing(p, "ref", "is not a full ref such as 'refs/heads/main'");
    ev->push.created = is_zero_sha(ev->push.before);
    ev->push.deleted = is_zero_sha(ev->push.after);
    return 0;
}

/* GitHub and Gitea send the same pull_request shape. */
static int parse_pull_request(struct webhook_event *ev, const struct parse_ctx *p, json_t *root)
{
    char action[64];
    int rc;

    rc = get_text(action, sizeof(action), p, root, "action", true);
    if (rc < 0)
        return rc;
    ev->kind = WEBHOOK_PULL_REQUEST;
    if (strcmp(action, "opened") == 0) {
        ev->pr.action = WEBHOOK_PR_OPENED;
    } else if (strcmp(action, "synchronize") == 0 || strcmp(action, "synchronized") == 0) {
        ev->pr.action = WEBHOOK_PR_SYNCHRONIZE; /* Gitea says "synchronized" */
    } else if (strcmp(action, "reopened") == 0) {
        ev->pr.action = WEBHOOK_PR_REOPENED;
    } else if (strcmp(action, "closed") == 0) {
        ev->pr.action = WEBHOOK_PR_CLOSED;
    } else if (strcmp(action, "edited") == 0 && at(root, "changes.base") != NULL) {
        ev->pr.action = WEBHOOK_PR_SYNCHRONIZE; /* retargeted: the plan's base changed */
    } else {
        ignore(ev, "pull request action '%s' does not change a plan", action);
        return 0;
    }
    rc = parse_repo(ev, p, root);
    if (rc == 0)
        rc = get_id(&ev->pr.number, p, root, "number", false);
    if (rc == 0 && ev->pr.number == 0)
        rc = get_id(&ev->pr.number, p, root, "pull_request.number", true);
    if (rc == 0)
        rc = get_sha(ev->pr.head_sha, p, root, "pull_request.head.sha", true);
    if (rc == 0)
        rc = get_text(ev->pr.head_ref, sizeof(ev->pr.head_ref), p, root, "pull_request.head.ref",
                      true);
    if (rc == 0)
        rc = get_text(ev->pr.base_ref, sizeof(ev->pr.base_ref), p, root, "pull_request.base.ref",
                      true);
    if (rc < 0)
        return rc;
    if (ev->pr.action == WEBHOOK_PR_CLOSED) {
        json_t *merged = at(root, "pull_request.merged");
        if (merged != NULL && !json_is_null(merged) && !json_is_boolean(merged))
            return missing(p, "pull_request.merged", "is not a boolean");
        ev->pr.merged = json_is_true(merged);
        if (ev->pr.merged)
            rc = get_sha(ev->pr.merge_sha, p, root, "pull_request.merge_commit_sha", false);
    }
    return rc;
}

static int parse_merge_request(struct webhook_event *ev, const struct parse_ctx *p, json_t *root)
{
    char action[64];
    char oldrev[RV_WEBHOOK_SHA_HEX_MAX + 1];
    int rc;

    rc = get_text(action, sizeof(action), p, root, "object_attributes.action", true);
    if (rc < 0)
        return rc;
    ev->kind = WEBHOOK_PULL_REQUEST;
    if (strcmp(action, "open") == 0) {
        ev->pr.action = WEBHOOK_PR_OPENED;
    } else if (strcmp(action, "reopen") == 0) {
        ev->pr.action = WEBHOOK_PR_REOPENED;
    } else if (strcmp(action, "close") == 0) {
        ev->pr.action = WEBHOOK_PR_CLOSED;
    } else if (strcmp(action, "merge") == 0) {
        ev->pr.action = WEBHOOK_PR_CLOSED;
        ev->pr.merged = true;
    } else if (strcmp(action, "update") == 0) {
        /* GitLab sends "update" for title or label edits too; only new
         * commits carry oldrev. */
        rc = get_sha(oldrev, p, root, "object_attributes.oldrev", false);
        if (rc < 0)
            return rc;
        if (oldrev[0] == '\0') {
            ignore(ev, "merge request %s without new commits does not change a plan", "update");
            return 0;
        }
        ev->pr.action = WEBHOOK_PR_SYNCHRONIZE;
    } else {
        ignore(ev, "merge request action '%s' does not change a plan", action);
        return 0;
    }
    rc = parse_repo(ev, p, root);
    if (rc == 0)
        rc = get_id(&ev->pr.number, p, root, "object_attributes.iid", true);
    if (rc == 0)
        rc = get_sha(ev->pr.head_sha, p, root, "object_attributes.last_commit.id", true);
    if (rc == 0)
        rc = get_text(ev->pr.head_ref, sizeof(ev->pr.head_ref), p, root,
                      "object_attributes.source_branch", true);
    if (rc == 0)
        rc = get_text(ev->pr.base_ref, sizeof(ev->pr.base_ref), p, root,
                      "object_attributes.target_branch", true);
    if (rc == 0 && ev->pr.merged)
        rc = get_sha(ev->pr.merge_sha, p, root, "object_attributes.merge_commit_sha", false);
    return rc;
}

enum payload_kind { PAYLOAD_NONE, PAYLOAD_PUSH, PAYLOAD_PR, PAYLOAD_MR };

static enum payload_kind payload_kind_of(enum webhook_forge forge, const char *event)
{
    if (forge == WEBHOOK_FORGE_GITLAB) {
        if (strcmp(event, "Push Hook") == 0 || strcmp(event, "Tag Push Hook") == 0)
            return PAYLOAD_PUSH;
        if (strcmp(event, "Merge Request Hook") == 0)
            return PAYLOAD_MR;
        return PAYLOAD_NONE;
    }
    if (strcmp(event, "push") == 0)
        return PAYLOAD_PUSH;
    if (strcmp(event, "pull_request") == 0)
        return PAYLOAD_PR;
    return PAYLOAD_NONE;
}

static bool is_json_content_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0;
}

int webhook_verify_and_parse(struct webhook_event *out, enum webhook_forge forge,
                             const char *secret, const struct webhook_headers *hd, const char *body,
                             size_t len, struct rv_error *err)
{
    const char *fname = webhook_forge_name(forge);
    struct forge_headers names = headers_of(forge);
    const char *event, *delivery, *ct;
    json_t *root = NULL;
    json_error_t jerr;
    int rc = 0;

    if (out == NULL || hd == NULL || hd->get == NULL || (body == NULL && len > 0)) {
        rc = rv_error_set(err, RV_EINVAL, false, "webhook: missing argument");
        goto out;
    }
    memset(out, 0, sizeof(*out));
    out->forge = forge;
    if (secret == NULL || secret[0] == '\0') {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "%s webhook: no secret configured; set one in reeve and on the forge",
                          fname);
        goto out;
    }
    if (len > RV_HTTP_BODY_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "%s webhook: body of %zu bytes is over the limit of %d", fname, len,
                          RV_HTTP_BODY_MAX);
        goto out;
    }

    /* Authenticity first: nothing of an unauthenticated body is looked at. */
    if (forge == WEBHOOK_FORGE_GITLAB)
        rc = verify_gitlab_token(secret, hd, err);
    else
        rc = verify_hmac_header(forge, secret, hd, body != NULL ? body : "", len, err);
    if (rc < 0)
        goto out;

    event = header(hd, names.event);
    if (event == NULL || !is_event_name(event, sizeof(out->event) - 1)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "%s webhook: header '%s' is %s; the forge sends it with every delivery",
                          fname, names.event, event == NULL ? "missing" : "malformed");
        goto out;
    }
    snprintf(out->event, sizeof(out->event), "%s", event);

    delivery = header(hd, names.delivery);
    if (delivery == NULL && names.delivery_fallback != NULL)
        delivery = header(hd, names.delivery_fallback);
    if (delivery != NULL) {
        if (!is_plain_token(delivery, RV_WEBHOOK_DELIVERY_MAX)) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "%s webhook: delivery id in '%s' is not 1 to %d printable "
                              "characters",
                              fname, names.delivery, RV_WEBHOOK_DELIVERY_MAX);
            goto out;
        }
        snprintf(out->delivery, sizeof(out->delivery), "%s", delivery);
    }

    enum payload_kind kind = payload_kind_of(forge, event);
    if (kind == PAYLOAD_NONE) {
        ignore(out,
               "event '%s' is not used by reeve; select only push and pull/merge request "
               "events in the webhook settings",
               event);
        goto out;
    }

    ct = header(hd, "Content-Type");
    if (ct != NULL && !is_json_content_type(ct)) {
        rc = rv_error_set(err, RV_EPARSE, false,
                          "%s webhook: content type '%.64s' is not supported; set the webhook's "
                          "content type to application/json",
                          fname, ct);
        goto out;
    }
    root = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = rv_error_set(err, RV_EPARSE, false,
                          "%s webhook: '%s' payload is not valid JSON (line %d, column %d: %s)",
                          fname, event, jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = rv_error_set(err, RV_EPARSE, false, "%s webhook: '%s' payload is not a JSON object",
                          fname, event);
        goto out;
    }

    struct parse_ctx p = {fname, event, err};
    switch (kind) {
    case PAYLOAD_PUSH:
        rc = parse_push(out, &p, root);
        break;
    case PAYLOAD_PR:
        rc = parse_pull_request(out, &p, root);
        break;
    case PAYLOAD_MR:
        rc = parse_merge_request(out, &p, root);
        break;
    case PAYLOAD_NONE:
        break;
    }
out:
    json_decref(root);
    if (rc < 0 && out != NULL)
        out->kind = WEBHOOK_IGNORED;
    /* The message quotes parts of the request (the JSON parser's near
     * '...'): keep it one printable line for logs and the answer. */
    if (rc < 0 && err != NULL)
        for (char *c = err->msg; *c != '\0'; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    return rc;
}

/* --- delivery-id dedup --- */

struct dedup_slot {
    uint64_t hash;
    char id[RV_WEBHOOK_DELIVERY_MAX + 1];
};

struct webhook_dedup {
    size_t cap;   /* ring slots */
    size_t count; /* ids held, <= cap */
    size_t next;  /* ring slot written next; the oldest id once full */
    struct dedup_slot *ring;
    uint32_t *index; /* open addressing, linear probing: ring slot + 1, 0 = empty */
    size_t mask;     /* index size - 1; the size is a power of two >= 2 * cap */
    uint64_t seed;
};

static uint64_t dedup_hash(const struct webhook_dedup *d, const char *id)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ d->seed;
    for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    /* final mix so that the low bits depend on every byte */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

int webhook_dedup_new(struct webhook_dedup **out, size_t capacity)
{
    struct webhook_dedup *d = NULL;
    size_t size = 2;
    int rc = 0;

    if (out == NULL)
        return RV_EINVAL;
    *out = NULL;
    if (capacity == 0)
        capacity = RV_WEBHOOK_DEDUP_MAX;
    if (capacity > 1u << 24) {
        rc = RV_EINVAL;
        goto out;
    }
    while (size < 2 * capacity)
        size *= 2;
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    d->cap = capacity;
    d->mask = size - 1;
    d->ring = calloc(capacity, sizeof(*d->ring));
    d->index = calloc(size, sizeof(*d->index));
    if (d->ring == NULL || d->index == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    rc = crypto_random(&d->seed, sizeof(d->seed));
    if (rc < 0)
        goto out;
    *out = d;
    d = NULL;
out:
    webhook_dedup_free(d);
    return rc;
}

void webhook_dedup_free(struct webhook_dedup *d)
{
    if (d == NULL)
        return;
    free(d->ring);
    free(d->index);
    free(d);
}

/* Index position holding id, or of the empty slot where it would go. */
static size_t dedup_probe(const struct webhook_dedup *d, const char *id, uint64_t hash)
{
    size_t i = (size_t)hash & d->mask;
    while (d->index[i] != 0) {
        const struct dedup_slot *s = &d->ring[d->index[i] - 1];
        if (s->hash == hash && strcmp(s->id, id) == 0)
            break;
        i = (i + 1) & d->mask;
    }
    return i;
}

static bool valid_id(const char *id)
{
    return id != NULL && id[0] != '\0' && strlen(id) <= RV_WEBHOOK_DELIVERY_MAX;
}

bool webhook_dedup_contains(const struct webhook_dedup *d, const char *id)
{
    if (d == NULL || !valid_id(id))
        return false;
    return d->index[dedup_probe(d, id, dedup_hash(d, id))] != 0;
}

/* Remove index entry i and shift later entries of its probe run back, so
 * lookups never stop early at the hole (no tombstones needed). */
static void dedup_index_remove(struct webhook_dedup *d, size_t i)
{
    size_t j = i;
    d->index[i] = 0;
    for (;;) {
        j = (j + 1) & d->mask;
        if (d->index[j] == 0)
            return;
        size_t home = (size_t)d->ring[d->index[j] - 1].hash & d->mask;
        /* the entry at j may stay if its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        d->index[i] = d->index[j];
        d->index[j] = 0;
        i = j;
    }
}

int webhook_dedup_add(struct webhook_dedup *d, const char *id)
{
    if (d == NULL || !valid_id(id))
        return RV_EINVAL;
    uint64_t hash = dedup_hash(d, id);
    size_t pos = dedup_probe(d, id, hash);
    if (d->index[pos] != 0)
        return 0;
    if (d->count == d->cap) {
        struct dedup_slot *old = &d->ring[d->next];
        dedup_index_remove(d, dedup_probe(d, old->id, old->hash));
        d->count--;
        pos = dedup_probe(d, id, hash); /* the removal may have moved the hole */
    }
    struct dedup_slot *s = &d->ring[d->next];
    s->hash = hash;
    snprintf(s->id, sizeof(s->id), "%s", id);
    d->index[pos] = (uint32_t)(d->next + 1);
    d->next = (d->next + 1) % d->cap;
    d->count++;
    return 0;
}

bool webhook_dedup_seen(struct webhook_dedup *d, const char *id)
{
    if (webhook_dedup_contains(d, id))
        return true;
    webhook_dedup_add(d, id);
    return false;
}

size_t webhook_dedup_count(const struct webhook_dedup *d)
{
    return d != NULL ? d->count : 0;
}

/* --- the HTTP route --- */

struct webhook_route {
    enum webhook_forge forge;
    char *secret;
    struct webhook_dedup *dedup;
    webhook_event_fn on_event;
    void *payload;
    struct webhook_route_stats stats;
};

static const char *req_header(const char *name, void *payload)
{
    return httpd_req_header(payload, name);
}

static void describe(char *out, size_t size, const struct webhook_event *ev)
{
    if (ev->kind == WEBHOOK_PUSH)
        snprintf(out, size, "push %s %.12s..%.12s", ev->push.ref, ev->push.before, ev->push.after);
    else
        snprintf(out, size, "pull request #%lld %s head %.12s (%s -> %s)%s",
                 (long long)ev->pr.number, webhook_pr_action_name(ev->pr.action), ev->pr.head_sha,
                 ev->pr.head_ref, ev->pr.base_ref, ev->pr.merged ? " merged" : "");
}

static void on_hook(struct httpd_req *req, void *payload)
{
    struct webhook_route *r = payload;
    const char *fname = webhook_forge_name(r->forge);
    struct webhook_headers hd = {req_header, req};
    struct webhook_event ev;
    struct rv_error err;
    char what[RV_WEBHOOK_REF_MAX * 2 + 128];
    char msg[RV_ERROR_MSG_MAX + 32];
    int rc;

    rv_error_clear(&err);
    rc = webhook_verify_and_parse(&ev, r->forge, r->secret, &hd, req->body, req->body_len, &err);
    if (rc < 0) {
        r->stats.rejected++;
        if (rc == RV_EAUTH)
            r->stats.unauthorized++;
        log_warn(WEBHOOK_LOG, "%s delivery from %s rejected (%d): %s", fname, req->remote,
                 webhook_http_status(rc), err.msg);
        httpd_respond_text(req, webhook_http_status(rc), err.msg);
        return;
    }
    if (ev.kind == WEBHOOK_IGNORED) {
        r->stats.ignored++;
        log_debug(WEBHOOK_LOG, "%s delivery '%s' ignored: %s", fname, ev.delivery,
                  ev.ignored_reason);
        snprintf(msg, sizeof(msg), "ignored: %s", ev.ignored_reason);
        httpd_respond_text(req, 202, msg);
        return;
    }
    if (ev.delivery[0] != '\0' && webhook_dedup_contains(r->dedup, ev.delivery)) {
        r->stats.duplicates++;
        log_info(WEBHOOK_LOG, "%s delivery '%s' seen before, ignored", fname, ev.delivery);
        httpd_respond_text(req, 200, "duplicate delivery, ignored");
        return;
    }
    describe(what, sizeof(what), &ev);
    rc = r->on_event(&ev, r->payload);
    if (rc < 0) {
        r->stats.busy++;
        log_warn(WEBHOOK_LOG, "%s delivery '%s' (%s %s) not queued: %s; the forge will retry",
                 fname, ev.delivery, ev.repo, what, rv_strerror(rc));
        httpd_req_add_header(req, "Retry-After", "10");
        httpd_respond_text(req, 503, "event queue is full; retry later");
        return;
    }
    if (ev.delivery[0] != '\0')
        webhook_dedup_add(r->dedup, ev.delivery);
    r->stats.accepted++;
    log_info(WEBHOOK_LOG, "%s delivery '%s' queued: %s %s", fname, ev.delivery, ev.repo, what);
    httpd_respond_text(req, 202, "accepted");
}

int webhook_route_install(struct webhook_route **out, struct httpd *h, const char *path,
                          const struct webhook_route_config *cfg, struct rv_error *err)
{
    struct webhook_route *r = NULL;
    int rc = 0;

    if (out != NULL)
        *out = NULL;
    if (out == NULL || h == NULL || path == NULL || cfg == NULL || cfg->on_event == NULL) {
        rc = rv_error_set(err, RV_EINVAL, false, "webhook: missing argument");
        goto out;
    }
    if (cfg->secret == NULL || cfg->secret[0] == '\0') {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "webhook '%s': no secret configured; an unauthenticated webhook "
                          "would let anyone trigger reconciles, set a secret",
                          path);
        goto out;
    }
    if (strlen(cfg->secret) > RV_WEBHOOK_SECRET_MAX) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "webhook '%s': secret is longer than %d bytes; use a shorter one", path,
                          RV_WEBHOOK_SECRET_MAX);
        goto out;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->secret = strdup(cfg->secret)) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "webhook '%s': out of memory", path);
        goto out;
    }
    r->forge = cfg->forge;
    r->on_event = cfg->on_event;
    r->payload = cfg->payload;
    rc = webhook_dedup_new(&r->dedup, cfg->dedup_max);
    if (rc < 0) {
        rc = rv_error_set(err, rc, false, "webhook '%s': cannot create the dedup set: %s", path,
                          rv_strerror(rc));
        goto out;
    }
    rc = httpd_route(h, "POST", path, on_hook, r);
    if (rc < 0) {
        rc = rv_error_set(err, rc, false, "webhook '%s': cannot add the route: %s", path,
                          rv_strerror(rc));
        goto out;
    }
    *out = r;
    r = NULL;
out:
    webhook_route_free(r);
    return rc;
}

void webhook_route_stats(struct webhook_route_stats *out, const struct webhook_route *r)
{
    if (out == NULL)
        return;
    if (r == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = r->stats;
}

void webhook_route_free(struct webhook_route *r)
{
    if (r == NULL)
        return;
    if (r->secret != NULL) {
        crypto_wipe(r->secret, strlen(r->secret));
        free(r->secret);
    }
    webhook_dedup_free(r->dedup);
    free(r);
}
