/* s3.c - the S3-compatible object store (see s3.h).
 *
 * Layout: the configuration shared by a store and its sinks and sources
 * (reference counted, the secret wiped at the last release); one request
 * engine (sign, send with libcurl, map the answer to an rv_error, retry);
 * a minimal XML reader for S3's answers; then put (sink), get (source),
 * stat, list and remove.
 */
#include "s3.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "buf.h"
#include "crypto.h"
#include "limits.h"
#include "log.h"
#include "sigv4.h"

/* ------------------------------------------------------------------ */
/* Shared configuration */

struct s3_shared {
    atomic_int refs;
    char *endpoint;  /* as configured, for messages */
    char *origin;    /* "http://host:port" */
    char *host;      /* "host:port" as sent in Host */
    char *base_path; /* "/<endpoint path>/<bucket>", encoded */
    char *bucket;
    char *prefix; /* "" or "p/q" */
    char *region;
    char *access_key_id;
    char *secret;     /* wiped on release */
    char *token;      /* NULL for none; wiped on release */
    char *cred_label; /* "credentials 's3-main'" */
    size_t part_size;
    unsigned list_page_keys;
    void (*progress)(uint64_t uploaded, void *ud);
    void *progress_ud;
};

static void wipe_free(char *s)
{
    if (s != NULL) {
        crypto_wipe(s, strlen(s));
        free(s);
    }
}

static void shared_release(struct s3_shared *sh)
{
    if (sh == NULL || atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    free(sh->endpoint);
    free(sh->origin);
    free(sh->host);
    free(sh->base_path);
    free(sh->bucket);
    free(sh->prefix);
    free(sh->region);
    free(sh->access_key_id);
    wipe_free(sh->secret);
    wipe_free(sh->token);
    free(sh->cred_label);
    free(sh);
}

static struct s3_shared *shared_ref(struct s3_shared *sh)
{
    atomic_fetch_add(&sh->refs, 1);
    return sh;
}

/* ------------------------------------------------------------------ */
/* Minimal XML reading: S3 answers are flat and small; element names are
 * searched as "<Name>" and text is entity-decoded. */

/* The text of the first <tag>...</tag> in [p, end). */
static bool xml_find(const char *p, const char *end, const char *tag, const char **val, size_t *len)
{
    char open[64], close[64];
    size_t tl = strlen(tag);
    if (tl + 4 > sizeof(open) || p == NULL)
        return false;
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = memmem(p, (size_t)(end - p), open, tl + 2);
    if (a == NULL)
        return false;
    a += tl + 2;
    const char *b = memmem(a, (size_t)(end - a), close, tl + 3);
    if (b == NULL)
        return false;
    *val = a;
    *len = (size_t)(b - a);
    return true;
}

static int utf8_put(struct buf *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_append(b, u, n);
}

/* Decode XML text (the five named entities and numeric references) into a
 * new string. RV_EPROTO for a malformed entity or a NUL. */
static int xml_text(char **out, const char *s, size_t len)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    struct buf b = BUF_INIT;
    int rc = buf_puts(&b, "");

    for (size_t i = 0; i < len && rc == 0; i++) {
        if (s[i] != '&') {
            rc = s[i] == '\0' ? RV_EPROTO : buf_putc(&b, s[i]);
            continue;
        }
        const char *semi = memchr(s + i, ';', len - i);
        if (semi == NULL || semi - (s + i) > 12) {
            rc = RV_EPROTO;
            break;
        }
        size_t el = (size_t)(semi - (s + i)); /* '&' .. before ';' */
        bool done = false;
        for (size_t k = 0; k < sizeof(named) / sizeof(named[0]) && !done; k++) {
            if (strlen(named[k].name) == el && memcmp(s + i + 1, named[k].name, el) == 0) {
                rc = buf_putc(&b, named[k].c);
                done = true;
            }
        }
        if (!done) {
            char num[16] = {0};
            char *endp = NULL;
            unsigned long cp = 0;
            if (el < 2 || el - 1 >= sizeof(num) || s[i + 1] != '#') {
                rc = RV_EPROTO;
                break;
            }
            memcpy(num, s + i + 2, el - 1);
            num[el - 1] = '\0';
            errno = 0;
            if (num[0] == 'x' || num[0] == 'X')
                cp = strtoul(num + 1, &endp, 16);
            else
                cp = strtoul(num, &endp, 10);
            /* num holds el - 1 bytes: the digits and the ';' */
            if (errno != 0 || endp == NULL || *endp != ';' || cp == 0 || cp > 0x10FFFF) {
                rc = RV_EPROTO;
                break;
            }
            rc = utf8_put(&b, cp);
        }
        i += el;
    }
    if (rc == 0)
        *out = buf_detach(&b);
    buf_release(&b);
    return rc;
}

/* The decoded text of <tag> into a fixed buffer; false when absent,
 * malformed or too long (then out is ""). */
static bool xml_get(char *out, size_t cap, const char *p, const char *end, const char *tag)
{
    const char *v;
    size_t len;
    char *t = NULL;
    out[0] = '\0';
    if (!xml_find(p, end, tag, &v, &len) || xml_text(&t, v, len) != 0)
        return false;
    bool ok = strlen(t) < cap;
    if (ok)
        memcpy(out, t, strlen(t) + 1);
    free(t);
    return ok;
}

/* Append s escaped for XML text. */
static int xml_escape(struct buf *b, const char *s)
{
    int rc = 0;
    for (; *s != '\0' && rc == 0; s++) {
        switch (*s) {
        case '&':
            rc = buf_puts(b, "&amp;");
            break;
        case '<':
            rc = buf_puts(b, "&lt;");
            break;
        case '>':
            rc = buf_puts(b, "&gt;");
            break;
        case '"':
            rc = buf_puts(b, "&quot;");
            break;
        default:
            rc = buf_putc(b, *s);
            break;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Requests */

struct s3_call {
    /* in */
    const char *method; /* GET, HEAD, PUT, POST, DELETE */
    const char *key;    /* store-relative key; NULL for the bucket */
    const char *query;  /* encoded query; NULL for none */
    const void *body;
    size_t body_len;
    const char *content_type; /* NULL for none */
    const char *range;        /* "bytes=a-b" or NULL */
    const char *if_match;     /* ETag or NULL */
    struct buf *out;          /* response body; NULL to drop it */
    size_t out_max;
    /* out */
    long status;
    int attempts;
    char etag[RV_S3_ETAG_MAX];
    int64_t content_length; /* -1 when unknown */
    int64_t range_total;    /* from Content-Range; -1 when absent */
    /* internal */
    size_t sent;
    bool overflow;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct s3_call *c = ud;
    size_t n = size * nmemb;
    if (c->out == NULL)
        return n;
    if (c->out->len + n > c->out_max || buf_append(c->out, data, n) != 0) {
        c->overflow = true;
        return 0;
    }
    return n;
}

static size_t on_upload(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct s3_call *c = ud;
    size_t n = size * nmemb, left = c->body_len - c->sent;
    if (n > left)
        n = left;
    if (n > 0)
        memcpy(dst, (const char *)c->body + c->sent, n);
    c->sent += n;
    return n;
}

static void header_value(char *out, size_t cap, const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len >= cap)
        len = 0; /* too long to be a real value: treat as absent */
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct s3_call *c = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) { /* a new response (after 100, say) */
        c->etag[0] = '\0';
        c->range_total = -1;
    } else if (n > 5 && strncasecmp(data, "etag:", 5) == 0) {
        header_value(c->etag, sizeof(c->etag), data + 5, n - 5);
    } else if (n > 14 && strncasecmp(data, "content-range:", 14) == 0) {
        char v[128];
        header_value(v, sizeof(v), data + 14, n - 14);
        const char *slash = strrchr(v, '/');
        char *endp = NULL;
        if (slash != NULL && slash[1] >= '0' && slash[1] <= '9') {
            long long t = strtoll(slash + 1, &endp, 10);
            if (endp != NULL && *endp == '\0' && t >= 0)
                c->range_total = t;
        }
    }
    return n;
}

/* The URL path of key (or of the bucket), encoded. */
static int object_path(struct buf *b, const struct s3_shared *sh, const char *key)
{
    int rc = buf_puts(b, sh->base_path);
    if (rc != 0 || key == NULL)
        return rc;
    rc = buf_putc(b, '/');
    if (rc == 0 && sh->prefix[0] != '\0') {
        rc = sigv4_uri_encode(b, sh->prefix, strlen(sh->prefix), true);
        if (rc == 0)
            rc = buf_putc(b, '/');
    }
    if (rc == 0)
        rc = sigv4_uri_encode(b, key, strlen(key), true);
    return rc;
}

static const char *describe(const char *what, const char *key, char *tmp, size_t cap)
{
    if (key != NULL)
        snprintf(tmp, cap, "%s '%s'", what, key);
    else
        snprintf(tmp, cap, "%s", what);
    return tmp;
}

/* Map a finished transfer that did not succeed to err. */
static int map_curl_error(const struct s3_shared *sh, CURLcode cc, const char *errbuf,
                          const char *op, struct rv_error *err)
{
    const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return rv_error_set(err, RV_EUNAVAIL, true, "cannot reach S3 endpoint '%s' to %s: %s",
                            sh->endpoint, op, why);
    case CURLE_PEER_FAILED_VERIFICATION:
        return rv_error_set(err, RV_EAUTH, false,
                            "the TLS certificate of S3 endpoint '%s' is not trusted (%s): "
                            "check the endpoint URL or the system's CA certificates",
                            sh->endpoint, why);
    default:
        return rv_error_set(err, RV_EHTTP, false, "S3 request to %s at '%s' failed: %s", op,
                            sh->endpoint, why);
    }
}

/* The server's <Message>, cut visibly ("...") when it does not fit. */
static void message_text(char *out, size_t cap, const char *p, const char *end)
{
    const char *v;
    size_t len;
    char *t = NULL;
    out[0] = '\0';
    if (!xml_find(p, end, "Message", &v, &len) || xml_text(&t, v, len) != 0)
        return;
    if (strlen(t) < cap)
        snprintf(out, cap, "%s", t);
    else
        snprintf(out, cap, "%.*s...", (int)(cap - 4), t);
    free(t);
}

void s3_error_parse(char *code, size_t code_cap, char *msg, size_t msg_cap, const char *xml,
                    size_t xml_len)
{
    code[0] = msg[0] = '\0';
    if (xml == NULL || memmem(xml, xml_len, "<Error>", 7) == NULL)
        return;
    xml_get(code, code_cap, xml, xml + xml_len, "Code");
    message_text(msg, msg_cap, xml, xml + xml_len);
}

static int map_http_error(const struct s3_shared *sh, const struct s3_call *c, const char *op,
                          struct rv_error *err)
{
    char code[64] = "", msg[192] = "";
    const char *p = c->out != NULL ? c->out->data : NULL;
    const char *end = p != NULL ? p + c->out->len : NULL;
    if (p != NULL)
        s3_error_parse(code, sizeof(code), msg, sizeof(msg), p, (size_t)(end - p));
    const char *sep = msg[0] != '\0' ? ": " : "";
    long st = c->status;

    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return rv_error_set(err, RV_EAUTH, false,
                            "S3 rejected the request signature (SignatureDoesNotMatch) to %s: "
                            "check the secret access key of %s",
                            op, sh->cred_label);
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return rv_error_set(err, RV_EAUTH, false,
                            "S3 does not know access key id '%s' (InvalidAccessKeyId) to %s: "
                            "check the access key id of %s",
                            sh->access_key_id, op, sh->cred_label);
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        return rv_error_set(err, RV_EAUTH, false,
                            "S3 refused the request time (RequestTimeTooSkewed) to %s: this "
                            "machine's clock differs from the server's by over 15 minutes; "
                            "fix the clock (NTP)",
                            op);
    if (st == 401 || st == 403)
        return rv_error_set(err, RV_EAUTH, false,
                            "S3 denied access (%ld %s%s%s) to %s in bucket '%s': check the "
                            "secret access key and the permissions of %s",
                            st, code[0] != '\0' ? code : "Forbidden", sep, msg, op, sh->bucket,
                            sh->cred_label);
    if (strcmp(code, "NoSuchBucket") == 0)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "bucket '%s' does not exist at S3 endpoint '%s' (NoSuchBucket): "
                            "create it or fix the bucket name",
                            sh->bucket, sh->endpoint);
    if (st == 404)
        return rv_error_set(err, RV_ENOTFOUND, false, "cannot %s: no such %s in bucket '%s'%s%s%s",
                            op, c->key != NULL ? "object" : "resource", sh->bucket,
                            sh->prefix[0] != '\0' ? " under prefix '" : "", sh->prefix,
                            sh->prefix[0] != '\0' ? "'" : "");
    if (st == 412)
        return rv_error_set(err, RV_ECONFLICT, false,
                            "cannot %s: the object was replaced while it was read; read it again",
                            op);
    if (st >= 500 || st == 429 || strcmp(code, "RequestTimeout") == 0 ||
        strcmp(code, "SlowDown") == 0 || strcmp(code, "InternalError") == 0)
        return rv_error_set(err, RV_EUNAVAIL, true,
                            "S3 endpoint '%s' is unavailable (%ld %s%s%s) to %s", sh->endpoint, st,
                            code, sep, msg, op);
    return rv_error_set(err, RV_EHTTP, false, "S3 refused to %s (%ld %s%s%s)", op, st,
                        code[0] != '\0' ? code : "error", sep, msg);
}

static struct curl_slist *add_hdr(struct curl_slist *l, bool *ok, const char *name,
                                  const char *value)
{
    struct buf line = BUF_INIT;
    struct curl_slist *nl = NULL;
    if (*ok && buf_printf(&line, "%s: %s", name, value) == 0)
        nl = curl_slist_append(l, line.data);
    if (line.data != NULL)
        crypto_wipe(line.data, line.len); /* may hold the session token */
    buf_release(&line);
    if (nl == NULL)
        *ok = false;
    return nl != NULL ? nl : l;
}

/* Sign the request and set the headers; *list gets what curl must send. */
static int sign_headers(struct curl_slist **list, const struct s3_shared *sh,
                        const struct s3_call *c, const char *path, const char *payload_hash,
                        struct rv_error *err)
{
    struct sigv4_header hs[2];
    size_t n = 0;
    struct sigv4_signed sg;
    struct curl_slist *l = NULL;
    bool ok = true;

    hs[n++] = (struct sigv4_header){"Host", sh->host};
    if (c->content_type != NULL)
        hs[n++] = (struct sigv4_header){"Content-Type", c->content_type};
    struct sigv4_request req = {.method = c->method,
                                .path = path,
                                .query = c->query,
                                .headers = hs,
                                .n_headers = n,
                                .payload_hash = payload_hash};
    struct sigv4_params p = {.access_key_id = sh->access_key_id,
                             .secret_access_key = sh->secret,
                             .session_token = sh->token,
                             .region = sh->region,
                             .service = "s3",
                             .now = time(NULL),
                             .s3 = true,
                             .sign_payload_header = true};
    int rc = sigv4_sign(&sg, &req, &p, err);
    if (rc != 0) {
        sigv4_signed_release(&sg);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        l = add_hdr(l, &ok, hs[i].name, hs[i].value);
    for (size_t i = 0; i < sg.n_added; i++)
        l = add_hdr(l, &ok, sg.added[i].name, sg.added[i].value);
    if (c->range != NULL)
        l = add_hdr(l, &ok, "Range", c->range);
    if (c->if_match != NULL)
        l = add_hdr(l, &ok, "If-Match", c->if_match);
    /* No "Expect: 100-continue" round trip; no Accept header. */
    if (ok) {
        struct curl_slist *nl = curl_slist_append(l, "Expect:");
        ok = nl != NULL;
        l = nl != NULL ? nl : l;
    }
    if (ok) {
        struct curl_slist *nl = curl_slist_append(l, "Accept:");
        ok = nl != NULL;
        l = nl != NULL ? nl : l;
    }
    sigv4_signed_release(&sg);
    if (!ok) {
        curl_slist_free_all(l);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory building an S3 request");
    }
    *list = l;
    return 0;
}

static void set_method(CURL *h, struct s3_call *c)
{
    if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(h, CURLOPT_READDATA, c);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body != NULL ? c->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
}

/* One attempt. */
static int call_once(const struct s3_shared *sh, CURL *h, struct s3_call *c,
                     const char *payload_hash, const char *op, struct rv_error *err)
{
    struct buf path = BUF_INIT, url = BUF_INIT;
    struct curl_slist *hl = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc;

    c->status = 0;
    c->etag[0] = '\0';
    c->content_length = -1;
    c->range_total = -1;
    c->sent = 0;
    c->overflow = false;
    if (c->out != NULL)
        buf_clear(c->out);
    rc = object_path(&path, sh, c->key);
    if (rc == 0)
        rc = buf_printf(&url, "%s%s%s%s", sh->origin, path.data, c->query != NULL ? "?" : "",
                        c->query != NULL ? c->query : "");
    if (rc != 0) {
        rv_error_set(err, rc, false, "out of memory building an S3 request");
        goto out;
    }
    rc = sign_headers(&hl, sh, c, path.data, payload_hash, err);
    if (rc != 0)
        goto out;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)RV_S3_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)RV_S3_LOW_SPEED_TIME_S);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    set_method(h, c);
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_WRITE_ERROR && c->overflow) {
        rc = rv_error_set(err, RV_EPROTO, false,
                          "S3 endpoint '%s' answered more than expected to %s", sh->endpoint, op);
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = map_curl_error(sh, cc, errbuf, op, err);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    curl_off_t cl = -1;
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
        c->content_length = cl;
    if (c->status < 200 || c->status > 299)
        rc = map_http_error(sh, c, op, err);
out:
    /* The handle outlives this call: leave it no pointer to our stack. */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hl);
    buf_release(&path);
    buf_release(&url);
    return rc;
}

static void backoff_sleep(int attempt)
{
    long ms = RV_S3_BACKOFF_MS;
    for (int i = 1; i < attempt && ms < RV_S3_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > RV_S3_BACKOFF_MAX_MS)
        ms = RV_S3_BACKOFF_MAX_MS;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A request with retries of retryable failures. what is the operation
 * ("put", "get", ...), named with the key in messages. */
static int s3_call(const struct s3_shared *sh, CURL *h, struct s3_call *c, const char *what,
                   struct rv_error *err)
{
    char op[RV_OBJSTORE_KEY_MAX + 64];
    char hash[CRYPTO_SHA256_HEX_SIZE];
    int rc;

    struct buf local = BUF_INIT; /* the answer when the caller keeps none: errors need it */
    bool own = c->out == NULL;

    describe(what, c->key, op, sizeof(op));
    if (c->out_max == 0)
        c->out_max = RV_S3_RESPONSE_MAX;
    rc = crypto_sha256_hex(hash, c->body, c->body_len);
    if (rc != 0)
        return rv_error_set(err, rc, false, "cannot hash an S3 request body: %s", rv_strerror(rc));
    if (own)
        c->out = &local;
    for (c->attempts = 1;; c->attempts++) {
        rv_error_clear(err);
        rc = call_once(sh, h, c, hash, op, err);
        if (rc == 0 || err == NULL || !err->retryable || c->attempts >= RV_S3_ATTEMPTS)
            break;
        log_warn("s3", "%s (attempt %d of %d, retrying)", err->msg, c->attempts, RV_S3_ATTEMPTS);
        backoff_sleep(c->attempts);
    }
    if (rc != 0 && err != NULL && err->retryable && c->attempts > 1) {
        char first[RV_ERROR_MSG_MAX];
        snprintf(first, sizeof(first), "%s", err->msg);
        rv_error_set(err, rc, true, "%s (after %d attempts)", first, c->attempts);
    }
    if (own) {
        c->out = NULL;
        buf_release(&local);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* The store */

struct s3_store {
    struct objstore base;
    struct s3_shared *sh;
    CURL *h;
};

static CURL *new_handle(struct rv_error *err)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        rv_error_set(err, RV_ENOMEM, false, "cannot create an HTTP client handle for S3");
    return h;
}

static int key_ok(const char *key, struct rv_error *err)
{
    return objstore_key_check(key, err);
}

/* --- put (sink) --- */

struct s3_sink {
    struct rv_sink base;
    struct s3_shared *sh;
    CURL *h;
    char *key;
    char *data; /* the part being filled */
    size_t len, cap;
    char *upload_id;
    char **etags;
    size_t n_parts, etags_cap;
    uint64_t uploaded;
    int failed; /* a sticky error code once a write failed */
};

static int sink_write(struct rv_sink *s, const void *data, size_t len, struct rv_error *err);
static int sink_finish(struct rv_sink *s, struct rv_error *err);
static void sink_abort(struct rv_sink *s);

uint64_t objstore_s3_uploaded(const struct rv_sink *s)
{
    if (s == NULL || s->write != sink_write)
        return 0;
    return ((const struct s3_sink *)s)->uploaded;
}

/* Size of part number n (1-based): doubles every RV_S3_PART_GROW_EVERY parts. */
static size_t part_target(const struct s3_sink *k, size_t n)
{
    size_t size = k->sh->part_size;
    for (size_t g = (n - 1) / RV_S3_PART_GROW_EVERY; g > 0 && size < RV_S3_PART_SIZE_MAX; g--)
        size *= 2;
    return size < RV_S3_PART_SIZE_MAX ? size : RV_S3_PART_SIZE_MAX;
}

static void acknowledged(struct s3_sink *k, size_t n)
{
    k->uploaded += n;
    if (k->sh->progress != NULL)
        k->sh->progress(k->uploaded, k->sh->progress_ud);
}

static int create_upload(struct s3_sink *k, struct rv_error *err)
{
    struct buf out = BUF_INIT;
    char id[1024];
    struct s3_call c = {.method = "POST",
                        .key = k->key,
                        .query = "uploads=",
                        .content_type = "application/octet-stream",
                        .out = &out};
    int rc = s3_call(k->sh, k->h, &c, "start a multipart upload of", err);
    if (rc == 0) {
        if (!xml_get(id, sizeof(id), out.data, out.data + out.len, "UploadId") || id[0] == '\0')
            rc = rv_error_set(err, RV_EPROTO, false,
                              "S3 endpoint '%s' started a multipart upload of '%s' without an "
                              "UploadId",
                              k->sh->endpoint, k->key);
        else if ((k->upload_id = strdup(id)) == NULL)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    buf_release(&out);
    return rc;
}

static int upload_part(struct s3_sink *k, struct rv_error *err)
{
    struct buf q = BUF_INIT;
    int rc;
    size_t number = k->n_parts + 1;

    if (number > RV_S3_PARTS_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "cannot put '%s': more than %d parts; the object is too large", k->key,
                            RV_S3_PARTS_MAX);
    if (k->upload_id == NULL && (rc = create_upload(k, err)) != 0)
        return rc;
    if (k->n_parts == k->etags_cap) {
        size_t cap = k->etags_cap == 0 ? 16 : k->etags_cap * 2;
        char **e = realloc(k->etags, cap * sizeof(*e));
        if (e == NULL)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory");
        k->etags = e;
        k->etags_cap = cap;
    }
    rc = buf_printf(&q, "partNumber=%zu&uploadId=", number);
    if (rc == 0)
        rc = sigv4_uri_encode(&q, k->upload_id, strlen(k->upload_id), false);
    if (rc != 0)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    struct s3_call c = {
        .method = "PUT", .key = k->key, .query = q.data, .body = k->data, .body_len = k->len};
    char what[64];
    snprintf(what, sizeof(what), "upload part %zu of", number);
    rc = s3_call(k->sh, k->h, &c, what, err);
    if (rc == 0 && c.etag[0] == '\0')
        rc = rv_error_set(err, RV_EPROTO, false,
                          "S3 endpoint '%s' accepted part %zu of '%s' without an ETag",
                          k->sh->endpoint, number, k->key);
    if (rc == 0 && (k->etags[k->n_parts] = strdup(c.etag)) == NULL)
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (rc == 0) {
        k->n_parts++;
        acknowledged(k, k->len);
        k->len = 0;
    }
    buf_release(&q);
    return rc;
}

static int sink_write(struct rv_sink *s, const void *data, size_t len, struct rv_error *err)
{
    struct s3_sink *k = (struct s3_sink *)s;
    const char *p = data;

    if (k->failed != 0)
        return rv_error_set(err, k->failed, false,
                            "cannot write to '%s': an earlier write failed; abort the put", k->key);
    while (len > 0) {
        size_t target = part_target(k, k->n_parts + 1);
        if (k->len == target) { /* full, and more follows: send it */
            int rc = upload_part(k, err);
            if (rc != 0) {
                k->failed = rc;
                return rc;
            }
            continue;
        }
        size_t n = target - k->len < len ? target - k->len : len;
        if (k->len + n > k->cap) {
            size_t cap = k->cap == 0 ? 64 * 1024 : k->cap;
            while (cap < k->len + n)
                cap *= 2;
            if (cap > target)
                cap = target;
            char *d = realloc(k->data, cap);
            if (d == NULL) {
                k->failed = RV_ENOMEM;
                return rv_error_set(err, RV_ENOMEM, false, "out of memory buffering '%s'", k->key);
            }
            k->data = d;
            k->cap = cap;
        }
        memcpy(k->data + k->len, p, n);
        k->len += n;
        p += n;
        len -= n;
    }
    return 0;
}

static void sink_free(struct s3_sink *k)
{
    for (size_t i = 0; i < k->n_parts; i++)
        free(k->etags[i]);
    free(k->etags);
    free(k->upload_id);
    free(k->data);
    free(k->key);
    if (k->h != NULL)
        curl_easy_cleanup(k->h);
    shared_release(k->sh);
    free(k);
}

/* Best effort: a failure is logged (the bucket's lifecycle rule for
 * incomplete uploads cleans up what remains). */
static void abort_upload(struct s3_sink *k)
{
    struct buf q = BUF_INIT;
    struct rv_error err = {0};
    if (k->upload_id == NULL)
        return;
    if (buf_puts(&q, "uploadId=") == 0 &&
        sigv4_uri_encode(&q, k->upload_id, strlen(k->upload_id), false) == 0) {
        struct buf out = BUF_INIT;
        struct s3_call c = {.method = "DELETE", .key = k->key, .query = q.data, .out = &out};
        if (s3_call(k->sh, k->h, &c, "abort the multipart upload of", &err) != 0 &&
            err.code != RV_ENOTFOUND)
            log_warn("s3",
                     "%s (the incomplete upload stays until the bucket's lifecycle rule "
                     "removes it)",
                     err.msg);
        buf_release(&out);
    }
    buf_release(&q);
}

static void sink_abort(struct rv_sink *s)
{
    struct s3_sink *k = (struct s3_sink *)s;
    abort_upload(k);
    sink_free(k);
}

static int complete_body(struct buf *b, const struct s3_sink *k)
{
    int rc = buf_puts(b, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < k->n_parts && rc == 0; i++) {
        rc = buf_printf(b, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
        if (rc == 0)
            rc = xml_escape(b, k->etags[i]);
        if (rc == 0)
            rc = buf_puts(b, "</ETag></Part>");
    }
    if (rc == 0)
        rc = buf_puts(b, "</CompleteMultipartUpload>");
    return rc;
}

static int head_object(const struct s3_shared *sh, CURL *h, const char *key, int64_t *size,
                       char *etag, size_t etag_cap, struct rv_error *err);

static int complete_upload(struct s3_sink *k, struct rv_error *err)
{
    struct buf body = BUF_INIT, q = BUF_INIT, out = BUF_INIT;
    int rc = complete_body(&body, k);
    if (rc == 0)
        rc = buf_puts(&q, "uploadId=");
    if (rc == 0)
        rc = sigv4_uri_encode(&q, k->upload_id, strlen(k->upload_id), false);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    struct s3_call c = {.method = "POST",
                        .key = k->key,
                        .query = q.data,
                        .body = body.data,
                        .body_len = body.len,
                        .content_type = "application/xml",
                        .out = &out};
    rc = s3_call(k->sh, k->h, &c, "complete the multipart upload of", err);
    if (rc == RV_ENOTFOUND && c.attempts > 1) {
        /* An earlier attempt may have completed it and lost the answer. */
        int64_t size = -1;
        char etag[RV_S3_ETAG_MAX];
        struct rv_error e2 = {0};
        if (head_object(k->sh, k->h, k->key, &size, etag, sizeof(etag), &e2) == 0 &&
            (uint64_t)size == k->uploaded) {
            rv_error_clear(err);
            rc = 0;
        }
    } else if (rc == 0 && out.data != NULL && strstr(out.data, "<Error>") != NULL) {
        /* S3 can answer 200 and report a failure in the body. */
        c.status = 500;
        rc = map_http_error(k->sh, &c, "complete the multipart upload", err);
    }
out:
    buf_release(&body);
    buf_release(&q);
    buf_release(&out);
    return rc;
}

static int sink_finish(struct rv_sink *s, struct rv_error *err)
{
    struct s3_sink *k = (struct s3_sink *)s;
    int rc;

    if (k->failed != 0) {
        rc = rv_error_set(err, k->failed, false, "cannot finish '%s': an earlier write failed",
                          k->key);
        goto fail;
    }
    if (k->upload_id == NULL) {
        struct s3_call c = {.method = "PUT",
                            .key = k->key,
                            .body = k->data,
                            .body_len = k->len,
                            .content_type = "application/octet-stream"};
        rc = s3_call(k->sh, k->h, &c, "put", err);
        if (rc != 0)
            goto fail;
        acknowledged(k, k->len);
        sink_free(k);
        return 0;
    }
    if (k->len > 0 && (rc = upload_part(k, err)) != 0)
        goto fail;
    rc = complete_upload(k, err);
    if (rc != 0)
        goto fail;
    sink_free(k);
    return 0;
fail:
    abort_upload(k);
    sink_free(k);
    return rc;
}

static int s3_put(struct objstore *o, const char *key, struct rv_sink **out, struct rv_error *err)
{
    struct s3_store *st = (struct s3_store *)o;
    struct s3_sink *k;
    int rc = key_ok(key, err);

    *out = NULL;
    if (rc != 0)
        return rc;
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    k->sh = shared_ref(st->sh);
    k->base = (struct rv_sink){sink_write, sink_finish, sink_abort};
    k->key = strdup(key);
    k->h = new_handle(err);
    if (k->key == NULL || k->h == NULL) {
        rc = k->h == NULL ? RV_ENOMEM : rv_error_set(err, RV_ENOMEM, false, "out of memory");
        sink_free(k);
        return rc;
    }
    *out = &k->base;
    return 0;
}

/* --- get (source) --- */

struct s3_source {
    struct rv_source base;
    struct s3_shared *sh;
    CURL *h;
    char *key;
    int64_t size;   /* of the object when the read began */
    int64_t offset; /* next byte to fetch */
    char etag[RV_S3_ETAG_MAX];
    struct buf chunk;
    size_t pos;
};

static int head_object(const struct s3_shared *sh, CURL *h, const char *key, int64_t *size,
                       char *etag, size_t etag_cap, struct rv_error *err)
{
    struct s3_call c = {.method = "HEAD", .key = key};
    int rc = s3_call(sh, h, &c, "stat", err);
    if (rc == 0 && c.content_length < 0)
        rc = rv_error_set(err, RV_EPROTO, false, "S3 endpoint '%s' gave no size for '%s'",
                          sh->endpoint, key);
    if (rc == 0) {
        *size = c.content_length;
        if (etag != NULL)
            snprintf(etag, etag_cap, "%s", c.etag);
    }
    return rc;
}

static int fetch_range(struct s3_source *r, struct rv_error *err)
{
    int64_t want = r->size - r->offset;
    char range[64];
    if (want > (int64_t)r->sh->part_size)
        want = (int64_t)r->sh->part_size;
    snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)r->offset,
             (long long)(r->offset + want - 1));
    struct s3_call c = {.method = "GET",
                        .key = r->key,
                        .range = range,
                        .if_match = r->etag[0] != '\0' ? r->etag : NULL,
                        .out = &r->chunk,
                        .out_max =
                            (size_t)want > RV_S3_RESPONSE_MAX ? (size_t)want : RV_S3_RESPONSE_MAX};
    int rc = s3_call(r->sh, r->h, &c, "get", err);
    if (rc != 0)
        return rc;
    /* 206 with the asked range of an object of the same size; or 200 with
     * the whole object when the range covered it all. */
    bool whole = c.status == 200 && r->offset == 0 && want == r->size;
    if ((c.status != 206 && !whole) || (int64_t)r->chunk.len != want ||
        (c.status == 206 && c.range_total != r->size))
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "object '%s' changed or was cut short while it was read (asked "
                            "bytes %lld-%lld of %lld, got %zu bytes, status %ld): read it again",
                            r->key, (long long)r->offset, (long long)(r->offset + want - 1),
                            (long long)r->size, r->chunk.len, c.status);
    r->offset += want;
    r->pos = 0;
    return 0;
}

static int source_read(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err)
{
    struct s3_source *r = (struct s3_source *)s;
    *n = 0;
    if (r->pos == r->chunk.len) {
        if (r->offset >= r->size || cap == 0)
            return 0;
        int rc = fetch_range(r, err);
        if (rc != 0)
            return rc;
    }
    size_t k = r->chunk.len - r->pos < cap ? r->chunk.len - r->pos : cap;
    memcpy(buf, r->chunk.data + r->pos, k);
    r->pos += k;
    *n = k;
    return 0;
}

static void source_close(struct rv_source *s)
{
    struct s3_source *r = (struct s3_source *)s;
    if (r == NULL)
        return;
    buf_release(&r->chunk);
    free(r->key);
    if (r->h != NULL)
        curl_easy_cleanup(r->h);
    shared_release(r->sh);
    free(r);
}

static int s3_get(struct objstore *o, const char *key, struct rv_source **out, struct rv_error *err)
{
    struct s3_store *st = (struct s3_store *)o;
    struct s3_source *r;
    int rc = key_ok(key, err);

    *out = NULL;
    if (rc != 0)
        return rc;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    r->base = (struct rv_source){source_read, source_close};
    r->sh = shared_ref(st->sh);
    r->key = strdup(key);
    r->h = new_handle(err);
    if (r->key == NULL || r->h == NULL) {
        rc = r->h == NULL ? RV_ENOMEM : rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto fail;
    }
    rc = head_object(r->sh, r->h, key, &r->size, r->etag, sizeof(r->etag), err);
    if (rc != 0)
        goto fail;
    *out = &r->base;
    return 0;
fail:
    source_close(&r->base);
    return rc;
}

/* --- stat, remove --- */

static int s3_stat(struct objstore *o, const char *key, int64_t *size, struct rv_error *err)
{
    struct s3_store *st = (struct s3_store *)o;
    int rc = key_ok(key, err);
    if (rc != 0)
        return rc;
    return head_object(st->sh, st->h, key, size, NULL, 0, err);
}

static int s3_remove(struct objstore *o, const char *key, struct rv_error *err)
{
    struct s3_store *st = (struct s3_store *)o;
    struct buf out = BUF_INIT;
    int rc = key_ok(key, err);
    if (rc == 0) {
        struct s3_call c = {.method = "DELETE", .key = key, .out = &out};
        rc = s3_call(st->sh, st->h, &c, "remove", err);
        if (rc == RV_ENOTFOUND && strstr(err->msg, "NoSuchBucket") == NULL) {
            rv_error_clear(err);
            rc = 0;
        }
    }
    buf_release(&out);
    return rc;
}

/* --- list --- */

struct list_acc {
    struct objstore_entry *e;
    size_t n, cap;
};

static int parse_time(int64_t *out, const char *s)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
        return RV_EPROTO;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* One <Contents> element: its key (without the store's prefix), size, time. */
static int list_add(struct list_acc *a, const char *prefix, const char *p, const char *end,
                    struct rv_error *err)
{
    const char *v;
    size_t len;
    char *key = NULL, size_s[32], time_s[64];
    char *endp = NULL;
    int64_t mtime = 0;
    size_t pl = strlen(prefix);
    int rc = 0;

    if (!xml_find(p, end, "Key", &v, &len) || xml_text(&key, v, len) != 0 ||
        !xml_get(size_s, sizeof(size_s), p, end, "Size")) {
        rc = RV_EPROTO;
        goto out;
    }
    long long size = strtoll(size_s, &endp, 10);
    if (endp == size_s || *endp != '\0' || size < 0) {
        rc = RV_EPROTO;
        goto out;
    }
    if (xml_get(time_s, sizeof(time_s), p, end, "LastModified") &&
        parse_time(&mtime, time_s) != 0) {
        rc = RV_EPROTO;
        goto out;
    }
    if (pl > 0 && (strncmp(key, prefix, pl) != 0 || key[pl] != '/'))
        goto out; /* not below the store's prefix: not ours */
    if (a->n == RV_OBJSTORE_LIST_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "more than %d objects match the prefix: list a narrower prefix",
                          RV_OBJSTORE_LIST_MAX);
        goto out;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap == 0 ? 64 : a->cap * 2;
        struct objstore_entry *e = realloc(a->e, cap * sizeof(*e));
        if (e == NULL) {
            rc = RV_ENOMEM;
            goto out;
        }
        a->e = e;
        a->cap = cap;
    }
    char *rel = strdup(key + (pl > 0 ? pl + 1 : 0));
    if (rel == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    a->e[a->n++] = (struct objstore_entry){rel, (int64_t)size, mtime};
out:
    if (rc == RV_EPROTO)
        rv_error_set(err, rc, false, "a malformed object list entry");
    else if (rc == RV_ENOMEM)
        rv_error_set(err, rc, false, "out of memory");
    free(key);
    return rc;
}

int s3_list_parse(struct objstore_entry **entries, size_t *n, size_t *cap, const char *store_prefix,
                  const char *xml, size_t xml_len, char **token, struct rv_error *err)
{
    struct list_acc acc = {*entries, *n, *cap}, *a = &acc;
    const char *p = xml != NULL ? xml : "", *end = p + (xml != NULL ? xml_len : 0);
    char trunc[16];
    int rc = 0;

    free(*token);
    *token = NULL;
    if (memmem(p, (size_t)(end - p), "<ListBucketResult", 17) == NULL) {
        rc = rv_error_set(err, RV_EPROTO, false, "a list answer without a ListBucketResult");
        goto out;
    }
    for (;;) {
        const char *v;
        size_t len;
        if (!xml_find(p, end, "Contents", &v, &len))
            break;
        rc = list_add(a, store_prefix, v, v + len, err);
        if (rc != 0)
            goto out;
        p = v + len + strlen("</Contents>");
    }
    p = xml;
    if (xml_get(trunc, sizeof(trunc), p, end, "IsTruncated") && strcmp(trunc, "true") == 0) {
        const char *v;
        size_t len;
        if (!xml_find(p, end, "NextContinuationToken", &v, &len) || len == 0 ||
            xml_text(token, v, len) != 0)
            rc = rv_error_set(err, RV_EPROTO, false,
                              "a truncated list without a usable NextContinuationToken");
    }
out:
    *entries = acc.e;
    *n = acc.n;
    *cap = acc.cap;
    return rc;
}

static int entry_cmp(const void *x, const void *y)
{
    return strcmp(((const struct objstore_entry *)x)->key, ((const struct objstore_entry *)y)->key);
}

static int list_query(struct buf *q, const char *full_prefix, const char *token, unsigned page_keys)
{
    int rc = 0;
    if (token != NULL) {
        rc = buf_puts(q, "continuation-token=");
        if (rc == 0)
            rc = sigv4_uri_encode(q, token, strlen(token), false);
        if (rc == 0)
            rc = buf_putc(q, '&');
    }
    if (rc == 0)
        rc = buf_printf(q, "list-type=2&max-keys=%u&prefix=", page_keys);
    if (rc == 0)
        rc = sigv4_uri_encode(q, full_prefix, strlen(full_prefix), false);
    return rc;
}

static int s3_list(struct objstore *o, const char *prefix, struct objstore_entry **out, size_t *n,
                   struct rv_error *err)
{
    struct s3_store *st = (struct s3_store *)o;
    const struct s3_shared *sh = st->sh;
    struct list_acc a = {0};
    struct buf full = BUF_INIT, q = BUF_INIT, page = BUF_INIT;
    char *token = NULL;
    size_t pages = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (prefix == NULL)
        prefix = "";
    if (strlen(prefix) > RV_OBJSTORE_KEY_MAX)
        return rv_error_set(err, RV_EINVAL, false, "cannot list: prefix longer than %d bytes",
                            RV_OBJSTORE_KEY_MAX);
    rc = sh->prefix[0] != '\0' ? buf_printf(&full, "%s/%s", sh->prefix, prefix)
                               : buf_puts(&full, prefix);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    do {
        /* An endpoint that keeps answering "truncated" must not loop forever. */
        if (++pages > RV_OBJSTORE_LIST_MAX / sh->list_page_keys + 100) {
            rc = rv_error_set(err, RV_EPROTO, false, "S3 endpoint '%s' sent too many list pages",
                              sh->endpoint);
            goto out;
        }
        buf_clear(&q);
        if (list_query(&q, full.data, token, sh->list_page_keys) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
        struct s3_call c = {.method = "GET", .query = q.data, .out = &page};
        char what[RV_OBJSTORE_KEY_MAX + 32];
        snprintf(what, sizeof(what), "list '%s'", prefix);
        rc = s3_call(sh, st->h, &c, what, err);
        if (rc == 0) {
            rc = s3_list_parse(&a.e, &a.n, &a.cap, sh->prefix, page.data, page.len, &token, err);
            if (rc == RV_EPROTO || rc == RV_ELIMIT) {
                char why[RV_ERROR_MSG_MAX];
                snprintf(why, sizeof(why), "%s", err->msg);
                rv_error_set(err, rc, false, "cannot list '%s' in bucket '%s' at '%s': %s", prefix,
                             sh->bucket, sh->endpoint, why);
            }
        }
    } while (rc == 0 && token != NULL);
    if (rc == 0) {
        if (a.n > 1)
            qsort(a.e, a.n, sizeof(*a.e), entry_cmp);
        *out = a.e;
        *n = a.n;
        a.e = NULL;
        a.n = 0;
    }
out:
    objstore_entries_free(a.e, a.n);
    free(token);
    buf_release(&full);
    buf_release(&q);
    buf_release(&page);
    return rc;
}

static void s3_free(struct objstore *o)
{
    struct s3_store *st = (struct s3_store *)o;
    if (st == NULL)
        return;
    if (st->h != NULL)
        curl_easy_cleanup(st->h);
    shared_release(st->sh);
    free(st);
}

/* ------------------------------------------------------------------ */
/* Configuration */

static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > RV_S3_BUCKET_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool token_ok(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

static int check_config(const struct s3_config *cfg, struct rv_error *err)
{
    if (cfg == NULL || cfg->endpoint == NULL || strlen(cfg->endpoint) > RV_S3_ENDPOINT_MAX)
        return rv_error_set(err, RV_EINVAL, false, "S3 endpoint is missing or longer than %d bytes",
                            RV_S3_ENDPOINT_MAX);
    if (cfg->bucket == NULL || !bucket_ok(cfg->bucket))
        return rv_error_set(err, RV_EINVAL, false,
                            "S3 bucket '%s' is not a valid bucket name: 3 to %d characters of "
                            "a-z, 0-9, '.', '-' and '_'",
                            cfg->bucket != NULL ? cfg->bucket : "", RV_S3_BUCKET_MAX);
    if (!token_ok(cfg->region, RV_S3_REGION_MAX) || strchr(cfg->region, '/') != NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "S3 region is missing or malformed: give one such as 'us-east-1'");
    if (!token_ok(cfg->access_key_id, RV_S3_CREDENTIAL_MAX) ||
        strchr(cfg->access_key_id, '/') != NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "S3 access key id is missing or malformed (printable, no spaces or "
                            "'/', at most %d bytes)",
                            RV_S3_CREDENTIAL_MAX);
    if (!token_ok(cfg->secret_access_key, RV_S3_CREDENTIAL_MAX))
        return rv_error_set(err, RV_EINVAL, false,
                            "S3 secret access key is missing or malformed (printable, no "
                            "spaces, at most %d bytes)",
                            RV_S3_CREDENTIAL_MAX);
    if (cfg->session_token != NULL && cfg->session_token[0] != '\0' &&
        !token_ok(cfg->session_token, 4096))
        return rv_error_set(err, RV_EINVAL, false, "S3 session token is malformed");
    if (cfg->part_size != 0 &&
        (cfg->part_size < RV_S3_PART_SIZE_MIN || cfg->part_size > RV_S3_PART_SIZE_MAX))
        return rv_error_set(err, RV_EINVAL, false,
                            "S3 part size %zu is out of range: %d to %d bytes", cfg->part_size,
                            RV_S3_PART_SIZE_MIN, RV_S3_PART_SIZE_MAX);
    if (cfg->list_page_keys > RV_S3_LIST_PAGE_KEYS)
        return rv_error_set(err, RV_EINVAL, false, "S3 list page size %u is over %d",
                            cfg->list_page_keys, RV_S3_LIST_PAGE_KEYS);
    if (cfg->prefix != NULL && cfg->prefix[0] != '\0') {
        struct rv_error e = {0};
        if (strlen(cfg->prefix) > RV_S3_PREFIX_MAX || objstore_key_check(cfg->prefix, &e) != 0)
            return rv_error_set(err, RV_EINVAL, false,
                                "S3 prefix '%s' is not valid: at most %d bytes of segments of "
                                "[A-Za-z0-9._-] separated by '/', without a leading or "
                                "trailing '/'",
                                cfg->prefix, RV_S3_PREFIX_MAX);
    }
    return 0;
}

static char *dup_or(const char *s, bool *ok)
{
    char *d = strdup(s != NULL ? s : "");
    if (d == NULL)
        *ok = false;
    return d;
}

/* Split the endpoint into origin, Host value and base path. */
static int parse_endpoint(struct s3_shared *sh, const char *endpoint, struct rv_error *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *user = NULL,
         *frag = NULL;
    struct buf origin = BUF_INIT, hostv = BUF_INIT, base = BUF_INIT;
    int rc = 0;

    if (u == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "S3 endpoint '%s' is not an http:// or https:// URL", endpoint);
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
    if (query != NULL || user != NULL || frag != NULL) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "S3 endpoint '%s' must not hold credentials, a query or a fragment: "
                          "give scheme, host, port and optional path only",
                          endpoint);
        goto out;
    }
    rc = buf_printf(&hostv, "%s%s%s", host, port != NULL ? ":" : "", port != NULL ? port : "");
    if (rc == 0)
        rc = buf_printf(&origin, "%s://%s", scheme, hostv.data);
    if (rc == 0 && path != NULL) {
        size_t pl = strlen(path);
        while (pl > 0 && path[pl - 1] == '/')
            pl--;
        rc = buf_append(&base, path, pl);
    }
    if (rc == 0)
        rc = buf_putc(&base, '/');
    if (rc == 0)
        rc = sigv4_uri_encode(&base, sh->bucket, strlen(sh->bucket), false);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    sh->origin = buf_detach(&origin);
    sh->host = buf_detach(&hostv);
    sh->base_path = buf_detach(&base);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_free(frag);
    curl_url_cleanup(u);
    buf_release(&origin);
    buf_release(&hostv);
    buf_release(&base);
    return rc;
}

static int shared_new(struct s3_shared **out, const struct s3_config *cfg, struct rv_error *err)
{
    struct s3_shared *sh = calloc(1, sizeof(*sh));
    struct buf label = BUF_INIT;
    bool ok = true;
    int rc;

    if (sh == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    atomic_init(&sh->refs, 1);
    sh->endpoint = dup_or(cfg->endpoint, &ok);
    sh->bucket = dup_or(cfg->bucket, &ok);
    sh->prefix = dup_or(cfg->prefix, &ok);
    sh->region = dup_or(cfg->region, &ok);
    sh->access_key_id = dup_or(cfg->access_key_id, &ok);
    sh->secret = dup_or(cfg->secret_access_key, &ok);
    if (cfg->session_token != NULL && cfg->session_token[0] != '\0')
        sh->token = dup_or(cfg->session_token, &ok);
    if (cfg->credentials_name != NULL && cfg->credentials_name[0] != '\0')
        ok = ok && buf_printf(&label, "credentials '%s'", cfg->credentials_name) == 0;
    else
        ok = ok &&
             buf_printf(&label, "the credentials with access key id '%s'", cfg->access_key_id) == 0;
    sh->cred_label = ok ? buf_detach(&label) : NULL;
    buf_release(&label);
    sh->part_size = cfg->part_size != 0 ? cfg->part_size : RV_S3_PART_SIZE;
    sh->list_page_keys = cfg->list_page_keys != 0 ? cfg->list_page_keys : RV_S3_LIST_PAGE_KEYS;
    sh->progress = cfg->progress;
    sh->progress_ud = cfg->progress_ud;
    if (!ok || sh->cred_label == NULL) {
        shared_release(sh);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    rc = parse_endpoint(sh, cfg->endpoint, err);
    if (rc != 0) {
        shared_release(sh);
        return rc;
    }
    *out = sh;
    return 0;
}

int objstore_s3_new(struct objstore **out, const struct s3_config *cfg, struct rv_error *err)
{
    struct s3_store *st = NULL;
    int rc;

    *out = NULL;
    rc = check_config(cfg, err);
    if (rc != 0)
        return rc;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    st->base = (struct objstore){s3_put, s3_get, s3_stat, s3_list, s3_remove, s3_free};
    rc = shared_new(&st->sh, cfg, err);
    if (rc == 0 && (st->h = new_handle(err)) == NULL)
        rc = RV_ENOMEM;
    if (rc != 0) {
        s3_free(&st->base);
        return rc;
    }
    *out = &st->base;
    return 0;
}
