/* s3.h - an object store on S3-compatible storage (see objstore.h).
 *
 * Path-style addressing (<endpoint>/<bucket>/<prefix>/<key>) over http or
 * https with libcurl, every request signed with AWS Signature Version 4
 * (lib/sigv4.h) and the SHA-256 of its body (x-amz-content-sha256), never
 * UNSIGNED-PAYLOAD. The API is blocking; each store, sink and source has a
 * curl handle of its own that it reuses, so they are independent of each
 * other.
 *
 * put buffers up to a part (RV_S3_PART_SIZE, or cfg.part_size): an object
 * that fits is sent with one PUT at finish; a larger one becomes a multipart
 * upload whose parts are sent as they fill, and finish completes it (abort,
 * or any failure, aborts it, so no partial object appears). get reads the
 * object in ranged GETs of one part each, so memory stays bounded by the
 * part size, and checks that the object is not replaced while it is read.
 * list uses ListObjectsV2 with continuation tokens.
 *
 * Errors: RV_EAUTH for a refused signature, key or permission (403), with a
 * message naming the credentials; RV_ENOTFOUND for an absent object or
 * bucket; RV_EUNAVAIL (retryable) for 5xx answers, throttling and network
 * failures, after RV_S3_ATTEMPTS attempts with backoff; RV_EHTTP for other
 * refusals. The secret access key is never logged or put in a message, and
 * is wiped when the store is freed.
 */
#ifndef REEVE_S3_H
#define REEVE_S3_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "objstore.h"

struct s3_config {
    const char *endpoint; /* "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000" */
    const char *region;   /* "us-east-1" */
    const char *bucket;
    const char *prefix; /* NULL or "" for none; else prepended to keys with '/' */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;    /* NULL for none */
    const char *credentials_name; /* how messages name the credentials ("s3-main"); may be NULL */
    size_t part_size;             /* 0: RV_S3_PART_SIZE; else RV_S3_PART_SIZE_MIN..MAX */
    unsigned list_page_keys;      /* keys per list page; 0: 1000 (S3's maximum) */
    /* Called after each part (or single PUT) the server acknowledged, with
     * the bytes of this sink acknowledged so far; may be NULL. */
    void (*progress)(uint64_t uploaded, void *ud);
    void *progress_ud;
};

/* A store on cfg's bucket; the strings are copied. Nothing is sent yet: a
 * wrong endpoint or credentials show at the first request. RV_EINVAL with
 * the reason for a bad configuration. The store may be freed while sinks
 * and sources made from it are still open; they keep what they need. */
int objstore_s3_new(struct objstore **out, const struct s3_config *cfg, struct rv_error *err);

/* Bytes of a sink from an S3 store that the server has acknowledged so far
 * (0 for any other sink). */
uint64_t objstore_s3_uploaded(const struct rv_sink *s);

/* The parsers of S3's XML answers, exposed for tests and fuzzing. */

/* One ListObjectsV2 answer: the objects whose key is below store_prefix
 * ("" for all) are appended to *entries (*n used, *cap allocated; free with
 * objstore_entries_free) with that prefix and its '/' removed; *token gets
 * the continuation token, or NULL when the list is complete. RV_EPROTO for
 * a malformed answer, RV_ELIMIT past RV_OBJSTORE_LIST_MAX entries. */
int s3_list_parse(struct objstore_entry **entries, size_t *n, size_t *cap, const char *store_prefix,
                  const char *xml, size_t xml_len, char **token, struct rv_error *err);

/* The Code and Message of an <Error> answer ("" when absent or too long; a
 * long message is cut with "..."). */
void s3_error_parse(char *code, size_t code_cap, char *msg, size_t msg_cap, const char *xml,
                    size_t xml_len);

#endif
