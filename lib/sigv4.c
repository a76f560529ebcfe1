/* sigv4.c - AWS Signature Version 4 (see sigv4.h).
 *
 * Every step writes into a struct buf; one exit path per function frees
 * what it built. Input is bounded by RV_SIGV4_HEADERS_MAX and
 * RV_SIGV4_QUERY_MAX so sorting stays cheap and memory bounded.
 */
#include "sigv4.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int sigv4_uri_encode(struct buf *b, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            rc = buf_putc(b, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, esc, sizeof(esc));
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Percent-decode s[0..len) into b; a '%' not followed by two hex digits is
 * kept as it is (it is then encoded as %25). */
static int uri_decode(struct buf *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len) {
            int hi = crypto_hex_digit(s[i + 1]), lo = crypto_hex_digit(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (char)(hi * 16 + lo);
                i += 2;
            }
        }
        if (buf_putc(b, c) != 0)
            return RV_ENOMEM;
    }
    return 0;
}

/* --- canonical URI --- */

/* Segments of path after normalization (RFC 3986 remove_dot_segments, and
 * empty segments dropped as AWS does). */
static int normalize_path(struct buf *out, const char *path)
{
    size_t n = 0, cap = strlen(path) / 2 + 2;
    const char **seg = calloc(cap, sizeof(*seg));
    size_t *seg_len = calloc(cap, sizeof(*seg_len));
    int rc = 0;
    bool trailing = false;

    if (seg == NULL || seg_len == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    for (const char *p = path; *p != '\0';) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e != '\0' && *e != '/')
            e++;
        size_t len = (size_t)(e - p);
        trailing = (*e == '/' || len == 0);
        if (len == 0) {
            /* nothing */
        } else if (len == 1 && p[0] == '.') {
            trailing = true;
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (n > 0)
                n--;
            trailing = true;
        } else if (n < cap) {
            seg[n] = p;
            seg_len[n++] = len;
        }
        p = e;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = buf_putc(out, '/');
        if (rc == 0)
            rc = buf_append(out, seg[i], seg_len[i]);
    }
    if (rc == 0 && (n == 0 || trailing))
        rc = buf_putc(out, '/');
out:
    free(seg);
    free(seg_len);
    return rc;
}

static int canonical_uri(struct buf *b, const struct sigv4_request *req,
                         const struct sigv4_params *p)
{
    struct buf norm = BUF_INIT;
    int rc;

    if (p->s3)
        return buf_puts(b, req->path);
    if (p->normalize_path) {
        rc = normalize_path(&norm, req->path);
        if (rc == 0)
            rc = sigv4_uri_encode(b, norm.data, norm.len, true);
    } else {
        rc = sigv4_uri_encode(b, req->path, strlen(req->path), true);
    }
    buf_release(&norm);
    return rc;
}

/* --- canonical query string --- */

struct qparam {
    char *name;  /* encoded */
    char *value; /* encoded */
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : strcmp(x->value, y->value);
}

static void qparams_free(struct qparam *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].name);
        free(q[i].value);
    }
    free(q);
}

/* Decode then strictly encode s[0..len) into a new string. */
static int reencode(char **out, const char *s, size_t len)
{
    struct buf dec = BUF_INIT, enc = BUF_INIT;
    int rc = uri_decode(&dec, s, len);
    if (rc == 0)
        rc = sigv4_uri_encode(&enc, dec.data != NULL ? dec.data : "", dec.len, false);
    if (rc == 0 && enc.data == NULL)
        rc = buf_puts(&enc, "");
    if (rc == 0)
        *out = buf_detach(&enc);
    buf_release(&dec);
    buf_release(&enc);
    return rc;
}

/* An extra parameter already in its final (encoded) form. */
struct qextra {
    const char *name;
    const char *value; /* raw: encoded here */
};

static int add_param(struct qparam *q, size_t *n, const char *name, size_t name_len,
                     const char *value, size_t value_len)
{
    int rc = reencode(&q[*n].name, name, name_len);
    if (rc == 0) {
        rc = reencode(&q[*n].value, value, value_len);
        if (rc != 0) {
            free(q[*n].name);
            return rc;
        }
        (*n)++;
    }
    return rc;
}

static int canonical_query(struct buf *b, const char *query, const struct qextra *extra,
                           size_t n_extra, struct rv_error *err)
{
    struct qparam *q = calloc(RV_SIGV4_QUERY_MAX, sizeof(*q));
    size_t n = 0;
    int rc = 0;

    if (q == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory signing a request");
    for (const char *p = query != NULL ? query : ""; *p != '\0' && rc == 0;) {
        const char *e = strchr(p, '&');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len > 0) {
            if (n == RV_SIGV4_QUERY_MAX) {
                rc = rv_error_set(err, RV_EINVAL, false,
                                  "cannot sign a request with more than %d query parameters",
                                  RV_SIGV4_QUERY_MAX);
                break;
            }
            const char *eq = memchr(p, '=', len);
            size_t nl = eq != NULL ? (size_t)(eq - p) : len;
            rc = add_param(q, &n, p, nl, eq != NULL ? eq + 1 : "", eq != NULL ? len - nl - 1 : 0);
        }
        p += len + (e != NULL ? 1 : 0);
    }
    for (size_t i = 0; i < n_extra && rc == 0; i++) {
        if (n == RV_SIGV4_QUERY_MAX)
            rc = rv_error_set(err, RV_EINVAL, false,
                              "cannot sign a request with more than %d query parameters",
                              RV_SIGV4_QUERY_MAX);
        else
            rc = add_param(q, &n, extra[i].name, strlen(extra[i].name), extra[i].value,
                           strlen(extra[i].value));
    }
    if (rc == 0) {
        qsort(q, n, sizeof(*q), qparam_cmp);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = buf_printf(b, "%s%s=%s", i > 0 ? "&" : "", q[i].name, q[i].value);
    }
    if (rc == RV_ENOMEM)
        rv_error_set(err, rc, false, "out of memory signing a request");
    qparams_free(q, n);
    return rc;
}

/* --- canonical headers --- */

struct hdr {
    char *name;  /* lowercase */
    char *value; /* trimmed, whitespace runs collapsed */
    size_t order;
};

static int hdr_cmp(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int hdr_set(struct hdr *h, const char *name, const char *value, size_t order)
{
    struct buf v = BUF_INIT;
    size_t nl = strlen(name);
    int rc = 0;

    h->order = order;
    h->name = malloc(nl + 1);
    if (h->name == NULL)
        return RV_ENOMEM;
    for (size_t i = 0; i <= nl; i++) {
        char c = name[i];
        h->name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    while (is_space(*value))
        value++;
    for (const char *p = value; *p != '\0' && rc == 0; p++) {
        if (!is_space(*p)) {
            rc = buf_putc(&v, *p);
            continue;
        }
        while (is_space(p[1]))
            p++;
        if (p[1] != '\0')
            rc = buf_putc(&v, ' ');
    }
    if (rc == 0 && v.data == NULL)
        rc = buf_puts(&v, "");
    if (rc == 0)
        h->value = buf_detach(&v);
    buf_release(&v);
    return rc;
}

static void hdrs_free(struct hdr *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

/* Canonical headers block (each "name:value\n") into ch and the signed
 * header list into sh. */
static int canonical_headers(struct buf *ch, struct buf *sh, const struct sigv4_header *hs,
                             size_t n_hs, const struct sigv4_header *extra, size_t n_extra,
                             struct rv_error *err)
{
    struct hdr *h = NULL;
    size_t n = 0;
    int rc = 0;

    if (n_hs + n_extra > RV_SIGV4_HEADERS_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "cannot sign a request with more than %d headers",
                            RV_SIGV4_HEADERS_MAX);
    h = calloc(n_hs + n_extra + 1, sizeof(*h));
    if (h == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_hs + n_extra && rc == 0; i++) {
        const struct sigv4_header *s = i < n_hs ? &hs[i] : &extra[i - n_hs];
        if (s->name == NULL || s->name[0] == '\0' || s->value == NULL) {
            rc =
                rv_error_set(err, RV_EINVAL, false, "cannot sign a header without a name or value");
            goto out;
        }
        rc = hdr_set(&h[n], s->name, s->value, i);
        n++;
    }
    if (rc != 0)
        goto out;
    qsort(h, n, sizeof(*h), hdr_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool same = i > 0 && strcmp(h[i - 1].name, h[i].name) == 0;
        if (same) {
            rc = buf_printf(ch, ",%s", h[i].value);
            continue;
        }
        if (i > 0)
            rc = buf_puts(ch, "\n");
        if (rc == 0)
            rc = buf_printf(ch, "%s:%s", h[i].name, h[i].value);
        if (rc == 0)
            rc = buf_printf(sh, "%s%s", sh->len > 0 ? ";" : "", h[i].name);
    }
    if (rc == 0 && n > 0)
        rc = buf_puts(ch, "\n");
out:
    if (rc == RV_ENOMEM)
        rv_error_set(err, rc, false, "out of memory signing a request");
    hdrs_free(h, n);
    return rc;
}

/* --- signing --- */

static int amz_date(char out[SIGV4_AMZ_DATE_SIZE], time_t now, struct rv_error *err)
{
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(out, SIGV4_AMZ_DATE_SIZE, "%Y%m%dT%H%M%SZ", &tm) != SIGV4_AMZ_DATE_SIZE - 1)
        return rv_error_set(err, RV_EINVAL, false, "cannot sign a request: bad signing time");
    return 0;
}

/* HMAC chain: kDate, kRegion, kService, kSigning; then the signature. */
static int compute_signature(char out[65], const struct sigv4_params *p, const char *date8,
                             const char *sts)
{
    static const char prefix[] = "AWS4";
    uint8_t k[CRYPTO_SHA256_LEN], sig[CRYPTO_SHA256_LEN];
    size_t sl = strlen(p->secret_access_key);
    char *key = malloc(sizeof(prefix) + sl);
    int rc;

    if (key == NULL)
        return RV_ENOMEM;
    memcpy(key, prefix, sizeof(prefix) - 1);
    memcpy(key + sizeof(prefix) - 1, p->secret_access_key, sl);
    rc = crypto_hmac_sha256(k, key, sizeof(prefix) - 1 + sl, date8, 8);
    if (rc == 0)
        rc = crypto_hmac_sha256(k, k, sizeof(k), p->region, strlen(p->region));
    if (rc == 0)
        rc = crypto_hmac_sha256(k, k, sizeof(k), p->service, strlen(p->service));
    if (rc == 0)
        rc = crypto_hmac_sha256(k, k, sizeof(k), "aws4_request", 12);
    if (rc == 0)
        rc = crypto_hmac_sha256(sig, k, sizeof(k), sts, strlen(sts));
    if (rc == 0)
        rc = crypto_hex_encode(out, 65, sig, sizeof(sig));
    crypto_wipe(key, sizeof(prefix) - 1 + sl);
    crypto_wipe(k, sizeof(k));
    free(key);
    return rc;
}

static int check_args(const struct sigv4_request *req, const struct sigv4_params *p,
                      struct rv_error *err)
{
    if (req == NULL || p == NULL || req->method == NULL || req->path == NULL ||
        req->path[0] != '/' || req->payload_hash == NULL || p->access_key_id == NULL ||
        p->secret_access_key == NULL || p->region == NULL || p->service == NULL ||
        (req->headers == NULL && req->n_headers > 0))
        return rv_error_set(err, RV_EINVAL, false,
                            "cannot sign a request: method, path, payload hash, credentials, "
                            "region and service are required");
    if (strchr(p->region, '/') != NULL || strchr(p->service, '/') != NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "cannot sign a request: region '%s' must not contain '/'", p->region);
    return 0;
}

/* Canonical request, string to sign and signature into out. query and
 * headers are the final ones (the X-Amz-* additions included). */
static int sign_core(struct sigv4_signed *out, const struct sigv4_request *req,
                     const struct sigv4_params *p, const struct qextra *qx, size_t n_qx,
                     const struct sigv4_header *hx, size_t n_hx, struct buf *signed_headers,
                     struct rv_error *err)
{
    struct buf cr = BUF_INIT, ch = BUF_INIT, sts = BUF_INIT;
    char crh[CRYPTO_SHA256_HEX_SIZE];
    int rc;

    rc = buf_printf(&cr, "%s\n", req->method);
    if (rc == 0)
        rc = canonical_uri(&cr, req, p);
    if (rc == 0)
        rc = buf_putc(&cr, '\n');
    if (rc != 0)
        goto out;
    rc = canonical_query(&cr, req->query, qx, n_qx, err);
    if (rc == 0)
        rc = canonical_headers(&ch, signed_headers, req->headers, req->n_headers, hx, n_hx, err);
    if (rc != 0)
        goto out;
    rc = buf_printf(&cr, "\n%s\n%s\n%s", ch.data != NULL ? ch.data : "", signed_headers->data,
                    req->payload_hash);
    if (rc == 0)
        rc = crypto_sha256_hex(crh, cr.data, cr.len);
    if (rc == 0)
        rc = buf_printf(&sts, SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s", out->amz_date,
                        out->amz_date, p->region, p->service, crh);
    if (rc == 0)
        rc = compute_signature(out->signature, p, out->amz_date, sts.data);
    if (rc == 0) {
        out->canonical_request = buf_detach(&cr);
        out->string_to_sign = buf_detach(&sts);
    }
out:
    if (rc != 0 && err != NULL && err->code == 0)
        rv_error_set(err, rc, false, "cannot sign a request: %s", rv_strerror(rc));
    buf_release(&cr);
    buf_release(&ch);
    buf_release(&sts);
    return rc;
}

static int add_header(struct sigv4_signed *out, const char *name, const char *value)
{
    char *v = strdup(value);
    if (v == NULL)
        return RV_ENOMEM;
    out->added[out->n_added].name = name;
    out->added[out->n_added++].value = v;
    return 0;
}

int sigv4_sign(struct sigv4_signed *out, const struct sigv4_request *req,
               const struct sigv4_params *p, struct rv_error *err)
{
    struct sigv4_header hx[3];
    size_t n_hx = 0;
    struct buf sh = BUF_INIT, auth = BUF_INIT;
    bool token = false;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = check_args(req, p, err);
    if (rc == 0)
        rc = amz_date(out->amz_date, p->now, err);
    if (rc != 0)
        return rc;
    token = p->session_token != NULL && p->session_token[0] != '\0';
    hx[n_hx++] = (struct sigv4_header){"X-Amz-Date", out->amz_date};
    if (token && !p->omit_session_token)
        hx[n_hx++] = (struct sigv4_header){"X-Amz-Security-Token", p->session_token};
    if (p->sign_payload_header)
        hx[n_hx++] = (struct sigv4_header){"x-amz-content-sha256", req->payload_hash};
    rc = sign_core(out, req, p, NULL, 0, hx, n_hx, &sh, err);
    if (rc != 0)
        goto out;
    rc =
        buf_printf(&auth,
                   SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, "
                                   "SignedHeaders=%s, Signature=%s",
                   p->access_key_id, out->amz_date, p->region, p->service, sh.data, out->signature);
    if (rc == 0 && token)
        rc = add_header(out, "X-Amz-Security-Token", p->session_token);
    if (rc == 0)
        rc = add_header(out, "X-Amz-Date", out->amz_date);
    if (rc == 0 && p->sign_payload_header)
        rc = add_header(out, "x-amz-content-sha256", req->payload_hash);
    if (rc == 0)
        rc = add_header(out, "Authorization", auth.data);
    if (rc == 0)
        out->authorization = out->added[out->n_added - 1].value;
    else
        rv_error_set(err, rc, false, "out of memory signing a request");
out:
    buf_release(&sh);
    buf_release(&auth);
    return rc;
}

/* The presigned query: the request's query, the X-Amz-* parameters in the
 * order AWS writes them, and the signature. */
static int presigned_query(struct buf *q, const struct sigv4_request *req, const struct qextra *qx,
                           size_t n_qx, const char *token, const char *signature)
{
    static const char *order[] = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                                  "X-Amz-SignedHeaders", "X-Amz-Expires"};
    int rc = buf_puts(q, req->query != NULL ? req->query : "");
    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]) && rc == 0; o++) {
        for (size_t i = 0; i < n_qx && rc == 0; i++) {
            if (strcmp(qx[i].name, order[o]) != 0)
                continue;
            rc = buf_printf(q, "%s%s=", q->len > 0 ? "&" : "", qx[i].name);
            if (rc == 0)
                rc = sigv4_uri_encode(q, qx[i].value, strlen(qx[i].value), false);
        }
    }
    if (rc == 0 && token != NULL) {
        rc = buf_puts(q, "&X-Amz-Security-Token=");
        if (rc == 0)
            rc = sigv4_uri_encode(q, token, strlen(token), false);
    }
    if (rc == 0)
        rc = buf_printf(q, "&X-Amz-Signature=%s", signature);
    return rc;
}

int sigv4_presign(struct sigv4_signed *out, const struct sigv4_request *req,
                  const struct sigv4_params *p, unsigned expires, struct rv_error *err)
{
    struct qextra qx[6];
    size_t n_qx = 0;
    struct buf sh = BUF_INIT, cred = BUF_INIT, q = BUF_INIT, sh_probe = BUF_INIT;
    char exp[24];
    bool token;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = check_args(req, p, err);
    if (rc == 0)
        rc = amz_date(out->amz_date, p->now, err);
    if (rc != 0)
        return rc;
    token = p->session_token != NULL && p->session_token[0] != '\0';
    /* The signed header list is itself a signed parameter: compute it first. */
    {
        struct buf ch = BUF_INIT;
        rc = canonical_headers(&ch, &sh_probe, req->headers, req->n_headers, NULL, 0, err);
        buf_release(&ch);
        if (rc != 0)
            goto out;
        if (sh_probe.data == NULL) {
            rc = rv_error_set(err, RV_EINVAL, false, "cannot presign a request without headers");
            goto out;
        }
    }
    rc = buf_printf(&cred, "%s/%.8s/%s/%s/aws4_request", p->access_key_id, out->amz_date, p->region,
                    p->service);
    if (rc != 0)
        goto nomem;
    snprintf(exp, sizeof(exp), "%u", expires);
    qx[n_qx++] = (struct qextra){"X-Amz-Algorithm", SIGV4_ALGORITHM};
    qx[n_qx++] = (struct qextra){"X-Amz-Credential", cred.data};
    qx[n_qx++] = (struct qextra){"X-Amz-Date", out->amz_date};
    qx[n_qx++] = (struct qextra){"X-Amz-Expires", exp};
    if (token && !p->omit_session_token)
        qx[n_qx++] = (struct qextra){"X-Amz-Security-Token", p->session_token};
    qx[n_qx++] = (struct qextra){"X-Amz-SignedHeaders", sh_probe.data};
    rc = sign_core(out, req, p, qx, n_qx, NULL, 0, &sh, err);
    if (rc != 0)
        goto out;
    rc = presigned_query(&q, req, qx, n_qx, token ? p->session_token : NULL, out->signature);
    if (rc != 0)
        goto nomem;
    out->query = buf_detach(&q);
    goto out;
nomem:
    rv_error_set(err, rc, false, "out of memory signing a request");
out:
    buf_release(&sh);
    buf_release(&sh_probe);
    buf_release(&cred);
    buf_release(&q);
    return rc;
}

void sigv4_signed_release(struct sigv4_signed *s)
{
    if (s == NULL)
        return;
    free(s->canonical_request);
    free(s->string_to_sign);
    free(s->query);
    for (size_t i = 0; i < s->n_added; i++)
        free(s->added[i].value);
    memset(s, 0, sizeof(*s));
}
