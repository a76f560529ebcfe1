#include "forge.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

/* ---- names ---- */

static const char *const kind_names[] = {"github", "gitea", "gitlab"};
static const char *const state_names[] = {"pending", "success", "failure", "error"};

void forge_init(struct forge *f, enum forge_kind kind, const char *name, const char *api_url,
                const char *token)
{
    f->kind = kind;
    f->name = name;
    f->api_url = api_url;
    f->token = token;
    f->connect_timeout_ms = RV_FORGE_CONNECT_TIMEOUT_MS;
    f->timeout_ms = RV_FORGE_TIMEOUT_MS;
}

const char *forge_kind_name(enum forge_kind kind)
{
    return (unsigned)kind < 3 ? kind_names[kind] : "unknown";
}

int forge_kind_parse(enum forge_kind *out, const char *name)
{
    for (unsigned i = 0; i < 3; i++) {
        if (name && strcmp(name, kind_names[i]) == 0) {
            *out = (enum forge_kind)i;
            return 0;
        }
    }
    return RV_EINVAL;
}

const char *forge_state_name(enum forge_state state)
{
    return (unsigned)state < 4 ? state_names[state] : "unknown";
}

int forge_state_parse(enum forge_state *out, const char *name)
{
    for (unsigned i = 0; i < 4; i++) {
        if (name && strcmp(name, state_names[i]) == 0) {
            *out = (enum forge_state)i;
            return 0;
        }
    }
    return RV_EINVAL;
}

const char *forge_state_wire(enum forge_kind kind, enum forge_state state)
{
    if (kind == FORGE_GITLAB) {
        switch (state) {
        case FORGE_PENDING:
            return "pending";
        case FORGE_SUCCESS:
            return "success";
        case FORGE_FAILURE:
        case FORGE_ERROR:
            return "failed";
        }
        return "failed";
    }
    return forge_state_name(state);
}

/* ---- UTF-8 ---- */

/* Decode one UTF-8 sequence at s (n bytes available). Returns its length and
 * sets *cp, or 0 when the bytes are not valid UTF-8 (overlong forms,
 * surrogates and code points past U+10FFFF included). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

size_t forge_utf8_chars(const char *s)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        chars += (*p & 0xc0) != 0x80;
    return chars;
}

int forge_text_fit(char **out, const char *s, size_t max_chars)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    static const char ellipsis[] = "\xe2\x80\xa6";    /* U+2026 */
    struct buf b = BUF_INIT;
    size_t n = strlen(s);
    size_t chars = 0;
    size_t cut = 0; /* byte length after max_chars - 1 characters */
    int rc = 0;

    *out = NULL;
    /* Sanitize into b, noting where character max_chars - 1 ends. */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (chars + 1 == max_chars)
            cut = b.len;
        if (len == 0) {
            rc = buf_append(&b, replacement, 3);
            i++;
        } else if (cp < 0x20 || cp == 0x7f) {
            rc = buf_putc(&b, ' ');
            i += len;
        } else {
            rc = buf_append(&b, s + i, len);
            i += len;
        }
        if (rc != 0)
            goto out;
        chars++;
    }
    if (chars > max_chars) {
        b.len = max_chars == 0 ? 0 : cut;
        b.data[b.len] = '\0';
        if (max_chars > 0 && (rc = buf_append(&b, ellipsis, 3)) != 0)
            goto out;
    }
    *out = buf_detach(&b);
    if (*out == NULL)
        rc = RV_ENOMEM;
out:
    buf_release(&b);
    return rc;
}

/* ---- validation and URL building ---- */

static bool is_hex_sha(const char *s)
{
    size_t n = strlen(s);
    if (n != 40 && n != 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* "owner/name" (GitHub, Gitea) or "group[/subgroup...]/project" (GitLab). */
static bool is_repo_path(const char *s, bool nested)
{
    size_t seg_len = 0;
    size_t segs = 1;
    const char *seg = s;
    if (strlen(s) > 255)
        return false;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == '\0') {
            if (seg_len == 0 || (seg_len == 1 && seg[0] == '.') ||
                (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                break;
            segs++;
            seg = p + 1;
            seg_len = 0;
            continue;
        }
        if (!is_name_char(*p))
            return false;
        seg_len++;
    }
    return nested ? segs >= 2 : segs == 2;
}

static bool is_decimal_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 19 || s[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Printable ASCII without spaces: safe in a header or a URL. */
static bool is_token_text(const char *s)
{
    for (; *s; s++) {
        if (*s <= 0x20 || *s >= 0x7f)
            return false;
    }
    return true;
}

/* Append s percent-encoded: everything but RFC 3986 unreserved characters,
 * so "group/project" becomes "group%2Fproject". */
static int put_encoded(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            rc = buf_putc(b, (char)*p);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = buf_append(b, esc, 3);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Append "owner/name" with each segment encoded (they are validated names,
 * so this changes nothing today; it keeps the URL safe if that changes). */
static int put_segments(struct buf *b, const char *path)
{
    const char *slash = strchr(path, '/');
    char *first = strndup(path, (size_t)(slash - path));
    if (first == NULL)
        return RV_ENOMEM;
    int rc = put_encoded(b, first);
    free(first);
    if (rc == 0)
        rc = buf_putc(b, '/');
    if (rc == 0)
        rc = put_encoded(b, slash + 1);
    return rc;
}

static int header_add(struct forge_request *req, const char *name, const char *value)
{
    if (req->n_headers >= RV_FORGE_HEADERS_MAX)
        return RV_ELIMIT;
    struct buf b = BUF_INIT;
    if (buf_printf(&b, "%s: %s", name, value) != 0) {
        buf_release(&b);
        return RV_ENOMEM;
    }
    req->headers[req->n_headers++] = buf_detach(&b);
    return 0;
}

static int json_set_str(json_t *obj, const char *key, const char *value)
{
    json_t *v = json_string(value);
    if (v == NULL || json_object_set_new(obj, key, v) != 0)
        return RV_ENOMEM;
    return 0;
}

void forge_request_release(struct forge_request *req)
{
    if (req == NULL)
        return;
    free(req->url);
    for (size_t i = 0; i < req->n_headers; i++) {
        /* One of these carries the token. */
        explicit_bzero(req->headers[i], strlen(req->headers[i]));
        free(req->headers[i]);
    }
    free(req->body);
    memset(req, 0, sizeof(*req));
}

int forge_request_build(struct forge_request *out, const struct forge *f,
                        const struct forge_status *st, struct rv_error *err)
{
    const char *fname = f->name ? f->name : forge_kind_name(f->kind);
    struct buf url = BUF_INIT;
    json_t *body = NULL;
    char *desc = NULL;
    char ua[64];
    size_t desc_max, context_max;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    switch (f->kind) {
    case FORGE_GITHUB:
        desc_max = RV_FORGE_GITHUB_DESC_MAX;
        context_max = RV_FORGE_GITHUB_CONTEXT_MAX;
        break;
    case FORGE_GITEA:
        desc_max = RV_FORGE_GITEA_DESC_MAX;
        context_max = RV_FORGE_GITEA_CONTEXT_MAX;
        break;
    case FORGE_GITLAB:
        desc_max = RV_FORGE_GITLAB_DESC_MAX;
        context_max = RV_FORGE_GITLAB_NAME_MAX;
        break;
    default:
        rc =
            rv_error_set(err, RV_EINVAL, false, "forge '%s': unknown kind %d", fname, (int)f->kind);
        goto out;
    }

    /* The configuration. */
    const char *api = f->api_url ? f->api_url : "";
    size_t api_len = strlen(api);
    while (api_len > 0 && api[api_len - 1] == '/')
        api_len--;
    if ((strncmp(api, "https://", 8) != 0 && strncmp(api, "http://", 7) != 0) ||
        api_len > RV_FORGE_URL_MAX / 2 || !is_token_text(api)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "forge '%s': api url '%.200s' is not an http(s) url of at most %d "
                          "characters; fix it in reeve.yaml",
                          fname, api, RV_FORGE_URL_MAX / 2);
        goto out;
    }
    if (f->token == NULL || f->token[0] == '\0' || strlen(f->token) > RV_FORGE_TOKEN_MAX ||
        !is_token_text(f->token)) {
        /* Never echo the token, not even a bad one. */
        rc = rv_error_set(err, RV_EINVAL, false,
                          "forge '%s': the token is empty, longer than %d characters or "
                          "contains spaces or control characters; set it in reeve.yaml",
                          fname, RV_FORGE_TOKEN_MAX);
        goto out;
    }

    /* The status. */
    const char *repo = st->repo ? st->repo : "";
    bool numeric = f->kind == FORGE_GITLAB && is_decimal_id(repo);
    if (!numeric && !is_repo_path(repo, f->kind == FORGE_GITLAB)) {
        rc = rv_error_set(err, RV_EINVAL, false, "forge '%s': repository '%.200s' is not %s", fname,
                          repo,
                          f->kind == FORGE_GITLAB ? "a project id or a path like 'group/project'"
                                                  : "of the form 'owner/name'");
        goto out;
    }
    if (st->sha == NULL || !is_hex_sha(st->sha)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "forge '%s': commit '%.80s' is not a full hex commit id", fname,
                          st->sha ? st->sha : "");
        goto out;
    }
    if ((unsigned)st->state > FORGE_ERROR) {
        rc = rv_error_set(err, RV_EINVAL, false, "forge '%s': unknown status state %d", fname,
                          (int)st->state);
        goto out;
    }
    const char *context = st->context ? st->context : "";
    size_t ctx_chars = forge_utf8_chars(context);
    char *ctx_clean = NULL;
    if ((rc = forge_text_fit(&ctx_clean, context, context_max + 1)) != 0)
        goto nomem;
    bool ctx_ok = strcmp(ctx_clean, context) == 0; /* valid UTF-8, no control chars */
    free(ctx_clean);
    if (ctx_chars == 0 || ctx_chars > context_max || !ctx_ok) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "forge '%s': status context '%.80s' must be 1 to %zu characters of "
                          "valid UTF-8 without control characters",
                          fname, context, context_max);
        goto out;
    }
    const char *target = st->target_url ? st->target_url : "";
    size_t url_max = f->kind == FORGE_GITLAB ? RV_FORGE_GITLAB_URL_MAX : RV_FORGE_URL_MAX;
    if (target[0] != '\0' &&
        ((strncmp(target, "https://", 8) != 0 && strncmp(target, "http://", 7) != 0) ||
         strlen(target) > url_max || !is_token_text(target))) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "forge '%s': target url '%.200s' for status '%s' is not an http(s) "
                          "url of at most %zu characters; check the configured public url",
                          fname, target, context, url_max);
        goto out;
    }
    if ((rc = forge_text_fit(&desc, st->description ? st->description : "", desc_max)) != 0)
        goto nomem;

    /* URL. */
    if ((rc = buf_append(&url, api, api_len)) != 0)
        goto nomem;
    switch (f->kind) {
    case FORGE_GITHUB:
    case FORGE_GITEA:
        rc = buf_puts(&url, f->kind == FORGE_GITEA ? "/api/v1/repos/" : "/repos/");
        if (rc == 0)
            rc = put_segments(&url, repo);
        break;
    case FORGE_GITLAB:
        rc = buf_puts(&url, "/api/v4/projects/");
        if (rc == 0)
            rc = put_encoded(&url, repo);
        break;
    }
    if (rc == 0)
        rc = buf_printf(&url, "/statuses/%s", st->sha);
    if (rc != 0)
        goto nomem;
    if (url.len > RV_FORGE_URL_MAX) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "forge '%s': request url for repository '%.80s' is longer than %d "
                          "characters; shorten the api url",
                          fname, repo, RV_FORGE_URL_MAX);
        goto out;
    }

    /* Body. */
    body = json_object();
    if (body == NULL)
        goto nomem;
    rc = json_set_str(body, "state", forge_state_wire(f->kind, st->state));
    if (rc == 0 && target[0] != '\0')
        rc = json_set_str(body, "target_url", target);
    if (rc == 0 && desc[0] != '\0')
        rc = json_set_str(body, "description", desc);
    if (rc == 0)
        rc = json_set_str(body, f->kind == FORGE_GITLAB ? "name" : "context", context);
    if (rc != 0)
        goto nomem;
    out->body = json_dumps(body, JSON_COMPACT);
    if (out->body == NULL)
        goto nomem;

    /* Headers. The token goes only here. */
    struct buf auth = BUF_INIT;
    snprintf(ua, sizeof(ua), "reeve/%s", REEVE_VERSION);
    switch (f->kind) {
    case FORGE_GITHUB:
        rc = header_add(out, "Accept", "application/vnd.github+json");
        if (rc == 0)
            rc = buf_printf(&auth, "Bearer %s", f->token);
        if (rc == 0)
            rc = header_add(out, "Authorization", auth.data);
        if (rc == 0)
            rc = header_add(out, "X-GitHub-Api-Version", "2022-11-28");
        break;
    case FORGE_GITEA:
        rc = header_add(out, "Accept", "application/json");
        if (rc == 0)
            rc = buf_printf(&auth, "token %s", f->token);
        if (rc == 0)
            rc = header_add(out, "Authorization", auth.data);
        break;
    case FORGE_GITLAB:
        rc = header_add(out, "Accept", "application/json");
        if (rc == 0)
            rc = header_add(out, "PRIVATE-TOKEN", f->token);
        break;
    }
    if (auth.data)
        explicit_bzero(auth.data, auth.cap);
    buf_release(&auth);
    if (rc == 0)
        rc = header_add(out, "Content-Type", "application/json");
    if (rc == 0)
        rc = header_add(out, "User-Agent", ua);
    if (rc != 0)
        goto nomem;

    out->method = "POST";
    out->url = buf_detach(&url);
    if (out->url == NULL)
        goto nomem;
    rc = 0;
    goto out;
nomem:
    rc = rv_error_set(err, RV_ENOMEM, false, "forge '%s': out of memory building a request", fname);
out:
    if (rc != 0)
        forge_request_release(out);
    json_decref(body);
    free(desc);
    buf_release(&url);
    return rc;
}

/* ---- sending ---- */

void forge_response_init(struct forge_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    buf_init(&resp->body);
}

void forge_response_release(struct forge_response *resp)
{
    if (resp == NULL)
        return;
    buf_release(&resp->body);
    forge_response_init(resp);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct forge_response *resp = ud;
    size_t n = size * nmemb;
    size_t room = RV_FORGE_RESPONSE_MAX - resp->body.len;
    /* Keep the start of an oversized body (enough for a message), read and
     * drop the rest so the connection ends cleanly. */
    if (buf_append(&resp->body, data, n < room ? n : room) != 0)
        return 0;
    return n;
}

static void header_copy(char *dst, size_t dst_size, const char *v, size_t len)
{
    if (len >= dst_size)
        len = dst_size - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct forge_response *resp = ud;
    size_t n = size * nmemb;

    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a 1xx): forget the previous headers. */
        resp->retry_after[0] = '\0';
        resp->ratelimit_remaining[0] = '\0';
        resp->ratelimit_reset[0] = '\0';
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (colon == NULL)
        return n;
    size_t name_len = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = n - name_len - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
#define HEADER_IS(s) (name_len == sizeof(s) - 1 && strncasecmp(data, s, name_len) == 0)
    if (HEADER_IS("retry-after"))
        header_copy(resp->retry_after, sizeof(resp->retry_after), v, vlen);
    else if (HEADER_IS("x-ratelimit-remaining") || HEADER_IS("ratelimit-remaining"))
        header_copy(resp->ratelimit_remaining, sizeof(resp->ratelimit_remaining), v, vlen);
    else if (HEADER_IS("x-ratelimit-reset") || HEADER_IS("ratelimit-reset"))
        header_copy(resp->ratelimit_reset, sizeof(resp->ratelimit_reset), v, vlen);
#undef HEADER_IS
    return n;
}

static int transport_code(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
        return RV_ETIMEOUT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return RV_EINVAL;
    default:
        return RV_EUNAVAIL;
    }
}

int forge_send(struct forge_response *out, const struct forge *f, const struct forge_request *req,
               struct rv_error *err)
{
    const char *fname = f->name ? f->name : forge_kind_name(f->kind);
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE];
    CURL *c = NULL;
    int rc = 0;

    forge_response_init(out);
    c = curl_easy_init();
    if (c == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "forge '%s': cannot set up an http client", fname);
        goto out;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *h = curl_slist_append(headers, req->headers[i]);
        if (h == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "forge '%s': out of memory", fname);
            goto out;
        }
        headers = h;
    }
    /* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
    struct curl_slist *h = curl_slist_append(headers, "Expect:");
    if (h == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "forge '%s': out of memory", fname);
        goto out;
    }
    headers = h;

    errbuf[0] = '\0';
    long connect_ms =
        f->connect_timeout_ms > 0 ? f->connect_timeout_ms : RV_FORGE_CONNECT_TIMEOUT_MS;
    long total_ms = f->timeout_ms > 0 ? f->timeout_ms : RV_FORGE_TIMEOUT_MS;
    CURLcode cc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
    SETOPT(CURLOPT_HTTPHEADER, headers);
    SETOPT(CURLOPT_POSTFIELDS, req->body ? req->body : "");
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? strlen(req->body) : 0));
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, total_ms);
    SETOPT(CURLOPT_NOSIGNAL, 1L); /* called from worker threads */
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, out);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, out);
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
#undef SETOPT
    if (cc != CURLE_OK) {
        rc = rv_error_set(err, RV_EINTERNAL, false, "forge '%s': cannot configure http client: %s",
                          fname, curl_easy_strerror(cc));
        goto out;
    }
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        out->status = 0;
        out->transport_error = transport_code(cc);
        if (cc == CURLE_OPERATION_TIMEDOUT)
            snprintf(out->transport_msg, sizeof(out->transport_msg), "no answer within %ld ms",
                     total_ms);
        else
            snprintf(out->transport_msg, sizeof(out->transport_msg), "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return rc;
}

/* ---- classification ---- */

int forge_parse_retry_after(int64_t *out, const char *value, int64_t now)
{
    if (value == NULL || value[0] == '\0')
        return RV_EPARSE;
    if (isdigit((unsigned char)value[0])) {
        char *end;
        unsigned long long secs = strtoull(value, &end, 10);
        if (*end != '\0')
            return RV_EPARSE;
        /* Clamp here so the sum cannot overflow; callers clamp again. */
        if (secs > (unsigned long long)RV_FORGE_RETRY_AFTER_MAX_S)
            secs = (unsigned long long)RV_FORGE_RETRY_AFTER_MAX_S;
        *out = now + (int64_t)secs;
        return 0;
    }
    /* An HTTP-date: IMF-fixdate, or the obsolete RFC 850 and asctime forms,
     * all of which curl_getdate() reads. */
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return RV_EPARSE;
    *out = (int64_t)t;
    return 0;
}

/* Epoch seconds in a reset header; a small number is read as a delta (some
 * servers send seconds-until-reset). */
static int parse_reset(int64_t *out, const char *value, int64_t now)
{
    char *end;
    if (value[0] == '\0' || !isdigit((unsigned char)value[0]))
        return RV_EPARSE;
    unsigned long long v = strtoull(value, &end, 10);
    if (*end != '\0')
        return RV_EPARSE;
    if (v < 1000000000ULL)
        *out = now + (int64_t)v;
    else if (v > (unsigned long long)INT64_MAX / 2)
        return RV_EPARSE;
    else
        *out = (int64_t)v;
    return 0;
}

/* Append the forge's own words from an error body: GitHub's message and
 * errors[], Gitea's message, GitLab's message (string or field map) and
 * error. Falls back to the start of a non-JSON body. */
static void forge_words(char *dst, size_t dst_size, const struct buf *body)
{
    struct buf w = BUF_INIT;
    json_t *root = NULL;
    char *fit = NULL;

    dst[0] = '\0';
    if (body->len == 0)
        return;
    root = json_loadb(body->data, body->len, 0, NULL);
    if (json_is_object(root)) {
        json_t *m = json_object_get(root, "message");
        json_t *e = json_object_get(root, "error");
        if (json_is_string(m))
            buf_puts(&w, json_string_value(m));
        if (json_is_object(m)) {
            const char *field;
            json_t *list;
            json_object_foreach(m, field, list)
            {
                size_t i;
                json_t *item;
                json_array_foreach(list, i, item)
                {
                    if (json_is_string(item))
                        buf_printf(&w, "%s%s %s", w.len ? "; " : "", field,
                                   json_string_value(item));
                }
                if (json_is_string(list))
                    buf_printf(&w, "%s%s %s", w.len ? "; " : "", field, json_string_value(list));
            }
        }
        if (json_is_string(e))
            buf_printf(&w, "%s%s", w.len ? ": " : "", json_string_value(e));
        json_t *errors = json_object_get(root, "errors");
        size_t i;
        json_t *item;
        json_array_foreach(errors, i, item)
        {
            json_t *em = json_object_get(item, "message");
            json_t *ef = json_object_get(item, "field");
            json_t *ec = json_object_get(item, "code");
            if (json_is_string(em))
                buf_printf(&w, "%s%s", w.len ? ": " : "", json_string_value(em));
            else if (json_is_string(ef) && json_is_string(ec))
                buf_printf(&w, "%s%s %s", w.len ? ": " : "", json_string_value(ef),
                           json_string_value(ec));
            else if (json_is_string(item))
                buf_printf(&w, "%s%s", w.len ? ": " : "", json_string_value(item));
        }
    } else {
        buf_append(&w, body->data, body->len < 200 ? body->len : 200);
    }
    if (w.data && forge_text_fit(&fit, w.data, 200) == 0)
        snprintf(dst, dst_size, "%s", fit);
    free(fit);
    json_decref(root);
    buf_release(&w);
}

static bool contains_nocase(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

static const char *scope_hint(enum forge_kind kind)
{
    switch (kind) {
    case FORGE_GITHUB:
        return "a classic token needs the 'repo:status' scope, a fine-grained token "
               "'Commit statuses: read and write'";
    case FORGE_GITEA:
        return "the token needs the 'write:repository' scope and write access to the repository";
    case FORGE_GITLAB:
        return "the token needs the 'api' scope and at least the Developer role";
    }
    return "";
}

void forge_classify(struct forge_result *out, const struct forge *f, const struct forge_status *st,
                    const struct forge_response *resp, int64_t now)
{
    const char *fname = f->name ? f->name : forge_kind_name(f->kind);
    char words[256];
    char what[160];
    long code = resp->status;

    memset(out, 0, sizeof(*out));
    out->http_status = code;
    snprintf(what, sizeof(what), "status '%.60s' for %.60s@%.12s", st->context ? st->context : "",
             st->repo ? st->repo : "", st->sha ? st->sha : "");
    forge_words(words, sizeof(words), &resp->body);

    if (code == 0) {
        out->outcome = resp->transport_error == RV_EINVAL ? FORGE_PERMANENT : FORGE_RETRY;
        snprintf(out->message, sizeof(out->message), "cannot reach forge '%s' to post %s: %s%s",
                 fname, what, resp->transport_msg,
                 out->outcome == FORGE_RETRY ? " (will retry)" : "; check the api url");
        return;
    }
    if (code >= 200 && code < 300) {
        out->outcome = FORGE_OK;
        snprintf(out->message, sizeof(out->message), "forge '%s' accepted %s (%ld)", fname, what,
                 code);
        return;
    }
    if (f->kind == FORGE_GITLAB && code == 400 && st->state == FORGE_PENDING &&
        contains_nocase(words, "cannot transition status via :enqueue from :pending")) {
        /* GitLab refuses pending -> pending; the commit already shows pending. */
        out->outcome = FORGE_OK;
        snprintf(out->message, sizeof(out->message),
                 "forge '%s' already shows %s as pending (description not updated)", fname, what);
        return;
    }

    bool remaining_zero = strcmp(resp->ratelimit_remaining, "0") == 0;
    int64_t at = 0;
    bool have_retry_after = forge_parse_retry_after(&at, resp->retry_after, now) == 0;
    if (code == 429 || (code == 403 && (remaining_zero || have_retry_after ||
                                        contains_nocase(words, "rate limit")))) {
        if (!have_retry_after &&
            !(remaining_zero && parse_reset(&at, resp->ratelimit_reset, now) == 0))
            at = now + RV_FORGE_RATE_LIMIT_WAIT_S;
        if (at <= now)
            at = now + 1; /* a reset in the past: clocks differ; go soon */
        if (at > now + RV_FORGE_RETRY_AFTER_MAX_S)
            at = now + RV_FORGE_RETRY_AFTER_MAX_S;
        out->outcome = FORGE_RETRY;
        out->rate_limited = true;
        out->retry_at = at;
        snprintf(out->message, sizeof(out->message),
                 "forge '%s' rate limit reached posting %s: %ld \"%s\"; waiting %llds", fname, what,
                 code, words, (long long)(at - now));
        return;
    }
    if (code == 401) {
        out->outcome = FORGE_AUTH;
        snprintf(out->message, sizeof(out->message),
                 "forge '%s' rejected the token posting %s: 401 \"%s\"; check the token "
                 "configured for forge '%s'",
                 fname, what, words, fname);
        return;
    }
    if (code == 403) {
        out->outcome = FORGE_AUTH;
        snprintf(out->message, sizeof(out->message), "forge '%s' refused %s: 403 \"%s\"; %s", fname,
                 what, words, scope_hint(f->kind));
        return;
    }
    if (code == 408 || code >= 500) {
        out->outcome = FORGE_RETRY;
        if (have_retry_after) {
            if (at <= now)
                at = now + 1;
            if (at > now + RV_FORGE_RETRY_AFTER_MAX_S)
                at = now + RV_FORGE_RETRY_AFTER_MAX_S;
            out->retry_at = at;
        }
        snprintf(out->message, sizeof(out->message),
                 "forge '%s' failed posting %s: %ld \"%s\" (will retry)", fname, what, code, words);
        return;
    }
    out->outcome = FORGE_PERMANENT;
    if (code == 404)
        snprintf(out->message, sizeof(out->message),
                 "forge '%s' does not know repository '%.80s' or commit %.12s: 404 \"%s\"; "
                 "check the repository name and that the token can see it",
                 fname, st->repo ? st->repo : "", st->sha ? st->sha : "", words);
    else if (code >= 300 && code < 400)
        snprintf(out->message, sizeof(out->message),
                 "forge '%s' redirected the post of %s (%ld); set its api url to the final "
                 "address",
                 fname, what, code);
    else
        snprintf(out->message, sizeof(out->message), "forge '%s' refused %s: %ld \"%s\"", fname,
                 what, code, words);
}

int forge_post(struct forge_result *out, const struct forge *f, const struct forge_status *st,
               struct rv_error *err)
{
    struct forge_request req;
    struct forge_response resp;
    int rc;

    memset(out, 0, sizeof(*out));
    forge_response_init(&resp);
    rc = forge_request_build(&req, f, st, err);
    if (rc != 0) {
        out->outcome = FORGE_PERMANENT;
        snprintf(out->message, sizeof(out->message), "%s", err ? err->msg : "invalid status");
        goto out;
    }
    rc = forge_send(&resp, f, &req, err);
    if (rc != 0) {
        out->outcome = FORGE_RETRY;
        snprintf(out->message, sizeof(out->message), "%s", err ? err->msg : "local failure");
        goto out;
    }
    forge_classify(out, f, st, &resp, (int64_t)time(NULL));
    switch (out->outcome) {
    case FORGE_OK:
        rc = 0;
        break;
    case FORGE_RETRY:
        rc = rv_error_set(err, resp.transport_error == RV_ETIMEOUT ? RV_ETIMEOUT : RV_EUNAVAIL,
                          true, "%s", out->message);
        break;
    case FORGE_AUTH:
        rc = rv_error_set(err, RV_EAUTH, false, "%s", out->message);
        break;
    case FORGE_PERMANENT:
        rc = rv_error_set(err, RV_EHTTP, false, "%s", out->message);
        break;
    }
out:
    forge_request_release(&req);
    forge_response_release(&resp);
    return rc;
}
