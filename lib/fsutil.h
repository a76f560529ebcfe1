/* fsutil.h - small file-system helpers shared by the agent's modules:
 * reading a small file whole, replacing a file atomically and durably.
 */
#ifndef REEVE_FSUTIL_H
#define REEVE_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* Who a written file is handed to. */
struct fs_owner {
    uid_t uid;
    gid_t gid;
};

/* Replace path with the len bytes of data: "<path>.tmp" is written with
 * mode (and owner, unless NULL), fsynced and renamed over path, then the
 * directory is fsynced; a reader sees the old file or the whole new one.
 * On a failure before the rename path is unchanged; the temporary is
 * removed on every failure. Returns 0, or
 * RV_EIO / RV_ENOMEM with err set ("<label>: cannot write '<tmp>': ...";
 * no prefix when label is NULL). */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    const struct fs_owner *owner, const char *label, struct rv_error *err);

/* Append the whole file path to out, NUL-terminated (out->data is never
 * NULL after success). Returns 0, or with err set ("<label>: ..."):
 * RV_ENOTFOUND when it does not exist, RV_ELIMIT when it holds more than
 * max bytes, RV_EIO, RV_ENOMEM. */
int fs_read_file(struct buf *out, const char *path, size_t max, const char *label,
                 struct rv_error *err);

/* The first line of a small file into out, without its line end; ""
 * when it cannot be read. */
void fs_read_line(const char *path, char *out, size_t cap);

/* fsync the directory holding path ("." when path has no '/'). Returns 0
 * or RV_EIO with err set. */
int fs_sync_parent(const char *path, const char *label, struct rv_error *err);

#endif
