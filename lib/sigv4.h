/* sigv4.h - AWS Signature Version 4 request signing.
 *
 * Builds the canonical request, the string to sign, the signing key (an
 * HMAC-SHA256 chain over date, region, service and "aws4_request") and the
 * signature, then either the Authorization header (sigv4_sign) or a
 * presigned query string (sigv4_presign). The output keeps the canonical
 * request and the string to sign so tests and debugging can compare them;
 * neither holds a secret. The secret access key is used only inside the
 * HMAC chain: it is never copied into the output or logged.
 *
 * Paths: for S3 (params.s3) the path is signed exactly as it is sent: the
 * caller encodes it once with sigv4_uri_encode and nothing is normalized
 * or encoded again. For other services the path is normalized (optional:
 * empty and "." segments removed, ".." resolved) and each segment is
 * URI-encoded once more, as AWS requires.
 *
 * Query strings are given as sent; every name and value is decoded and
 * encoded again with the strict AWS rules, sorted by encoded name then
 * value, and a parameter without a value is kept as "name=".
 */
#ifndef REEVE_SIGV4_H
#define REEVE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "limits.h"

struct sigv4_header {
    const char *name;
    const char *value;
};

/* What is sent. headers are the headers to sign (Host among them); they
 * are trimmed, whitespace runs collapsed and duplicates joined with ','. */
struct sigv4_request {
    const char *method; /* "GET", "PUT", ... */
    const char *path;   /* as sent, starting with '/' */
    const char *query;  /* as sent, without '?'; NULL or "" for none */
    const struct sigv4_header *headers;
    size_t n_headers;
    const char *payload_hash; /* lowercase hex SHA-256 of the body */
};

struct sigv4_params {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL for none */
    const char *region;
    const char *service;      /* "s3" */
    time_t now;               /* signing time (UTC seconds) */
    bool s3;                  /* S3 path rules: sign the path as sent */
    bool normalize_path;      /* other services: remove dot and empty segments */
    bool sign_payload_header; /* add and sign x-amz-content-sha256 (S3 needs it) */
    bool omit_session_token;  /* send the token but leave it out of the signature */
};

/* A header the caller must add to the request, in this order. */
struct sigv4_added {
    const char *name; /* "X-Amz-Date", "Authorization", ... */
    char *value;
};

#define SIGV4_AMZ_DATE_SIZE 17 /* "20150830T123600Z" and a NUL */
#define SIGV4_ADDED_MAX 4

struct sigv4_signed {
    char amz_date[SIGV4_AMZ_DATE_SIZE];
    char signature[65]; /* lowercase hex */
    char *canonical_request;
    char *string_to_sign;
    char *authorization; /* sigv4_sign: the Authorization value (also in added) */
    char *query;         /* sigv4_presign: the query string to send, without '?' */
    struct sigv4_added added[SIGV4_ADDED_MAX];
    size_t n_added;
};

/* Sign with the Authorization header: out gets the headers to add
 * (X-Amz-Security-Token, X-Amz-Date, x-amz-content-sha256, Authorization as
 * applicable). RV_EINVAL for a malformed request or too many headers or
 * parameters. Release out with sigv4_signed_release, also on failure. */
int sigv4_sign(struct sigv4_signed *out, const struct sigv4_request *req,
               const struct sigv4_params *p, struct rv_error *err);

/* Presign: out->query is the request's query with the X-Amz-* parameters
 * and the signature appended; valid for expires seconds. */
int sigv4_presign(struct sigv4_signed *out, const struct sigv4_request *req,
                  const struct sigv4_params *p, unsigned expires, struct rv_error *err);

void sigv4_signed_release(struct sigv4_signed *s);

/* Append s (len bytes) URI-encoded to b: unreserved characters
 * [A-Za-z0-9-._~] as they are, every other byte as %XX (uppercase hex);
 * '/' kept when keep_slash. 0 or RV_ENOMEM. */
int sigv4_uri_encode(struct buf *b, const char *s, size_t len, bool keep_slash);

#endif
