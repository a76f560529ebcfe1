/* objstore.h - byte streams and object stores for backups.
 *
 * A sink takes bytes and commits them as a whole at finish; a source gives
 * bytes until its end. An object store names objects by keys and hands out
 * sinks (put) and sources (get). Two stores exist: a local directory
 * (objstore_local_new, lib/objstore.c) and S3-compatible storage
 * (objstore_s3_new, lib/s3.h).
 *
 * The API is blocking: call it from a worker thread, never from a libuv
 * loop. One store, sink or source is used by one thread at a time; sinks and
 * sources of one store are independent of each other.
 *
 * Keys are relative paths of segments of [A-Za-z0-9._-] separated by '/':
 * no empty segment, no "." or "..", no leading or trailing '/', at most
 * RV_OBJSTORE_KEY_MAX bytes. objstore_key_check() says why a key is refused.
 * (It also refuses any segment starting with '.', which a local store keeps
 * for its temporary files, segments over RV_OBJSTORE_SEGMENT_MAX bytes and
 * keys of more than RV_OBJSTORE_DEPTH_MAX segments.)
 *
 * Atomicity: an object appears only when its sink's finish succeeds (a
 * local store writes a hidden temporary file, fsyncs and renames it; S3
 * completes a multipart upload), so a crash or an abort never leaves a
 * partial object under its key. Putting a key that exists replaces it.
 */
#ifndef REEVE_OBJSTORE_H
#define REEVE_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "limits.h"

/* A writable stream. Call write any number of times, then exactly one of
 * finish (commit) or abort (discard). Both free the sink, also when finish
 * fails (the object is then absent or unchanged). */
struct rv_sink {
    int (*write)(struct rv_sink *s, const void *data, size_t len, struct rv_error *err);
    int (*finish)(struct rv_sink *s, struct rv_error *err);
    void (*abort)(struct rv_sink *s);
};

/* A readable stream. read gives up to cap bytes; *n == 0 means the end.
 * close frees it, at any point. */
struct rv_source {
    int (*read)(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err);
    void (*close)(struct rv_source *s);
};

static inline int rv_sink_write(struct rv_sink *s, const void *d, size_t len, struct rv_error *err)
{
    return s->write(s, d, len, err);
}
static inline int rv_sink_finish(struct rv_sink *s, struct rv_error *err)
{
    return s->finish(s, err);
}
static inline void rv_sink_abort(struct rv_sink *s)
{
    if (s != NULL)
        s->abort(s);
}
static inline int rv_source_read(struct rv_source *s, void *buf, size_t cap, size_t *n,
                                 struct rv_error *err)
{
    return s->read(s, buf, cap, n, err);
}
static inline void rv_source_close(struct rv_source *s)
{
    if (s != NULL)
        s->close(s);
}

struct objstore_entry {
    char *key;     /* full key */
    int64_t size;  /* bytes */
    int64_t mtime; /* seconds since the epoch (UTC) */
};

/* Free a list from objstore list; NULL is a no-op. */
void objstore_entries_free(struct objstore_entry *e, size_t n);

struct objstore {
    /* Begin writing key. */
    int (*put)(struct objstore *o, const char *key, struct rv_sink **out, struct rv_error *err);
    /* Begin reading key: RV_ENOTFOUND when absent. */
    int (*get)(struct objstore *o, const char *key, struct rv_source **out, struct rv_error *err);
    /* Size of key: RV_ENOTFOUND when absent. */
    int (*stat)(struct objstore *o, const char *key, int64_t *size, struct rv_error *err);
    /* Every object whose key starts with prefix (a plain string prefix, ""
     * for all), sorted by key; at most RV_OBJSTORE_LIST_MAX (RV_ELIMIT past
     * it). */
    int (*list)(struct objstore *o, const char *prefix, struct objstore_entry **out, size_t *n,
                struct rv_error *err);
    /* Delete key; deleting an absent key succeeds. */
    int (*remove)(struct objstore *o, const char *key, struct rv_error *err);
    void (*free)(struct objstore *o);
};

/* 0 when key is acceptable; else RV_EINVAL with the reason in err. */
int objstore_key_check(const char *key, struct rv_error *err);

/* A store rooted at an existing directory (absolute path). Objects are files
 * below it, directories created as needed (0700), files 0600. */
int objstore_local_new(struct objstore **out, const char *root, struct rv_error *err);

/* Copy a whole source into a sink, then finish it (abort on failure); the
 * source is left open. *copied (may be NULL) gets the byte count. */
int objstore_copy(struct rv_sink *dst, struct rv_source *src, uint64_t *copied,
                  struct rv_error *err);

#endif
