/* fsutil.c - small file-system helpers (see fsutil.h). */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* err with "<label>: " in front when there is a label. */
static int io_fail(struct rv_error *err, const char *label, const char *what, const char *path,
                   int e)
{
    return rv_error_set(err, RV_EIO, false, "%s%scannot %s '%s': %s", label ? label : "",
                        label ? ": " : "", what, path, strerror(e));
}

#define PFX(label) (label) ? (label) : "", (label) ? ": " : ""

int fs_read_file(struct buf *out, const char *path, size_t max, const char *label,
                 struct rv_error *err)
{
    char chunk[4096];
    size_t start = out->len, r;
    int rc = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return rv_error_set(err, errno == ENOENT ? RV_ENOTFOUND : RV_EIO, false,
                            "%s%scannot open '%s': %s", PFX(label), path, strerror(errno));
    while (rc == 0 && (r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len - start + r > max)
            rc = rv_error_set(err, RV_ELIMIT, false, "%s%s'%s' is larger than %zu bytes",
                              PFX(label), path, max);
        else if (buf_append(out, chunk, r) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "%s%sout of memory", PFX(label));
    }
    if (rc == 0 && ferror(f))
        rc = io_fail(err, label, "read", path, EIO);
    if (rc == 0 && buf_puts(out, "") != 0)
        rc = rv_error_set(err, RV_ENOMEM, false, "%s%sout of memory", PFX(label));
    fclose(f);
    return rc;
}

void fs_read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    out[0] = '\0';
    if (f == NULL)
        return;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

int fs_sync_parent(const char *path, const char *label, struct rv_error *err)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(n + 1);
    int rc = 0;
    if (dir == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "%s%sout of memory", label ? label : "",
                            label ? ": " : "");
    memcpy(dir, slash == NULL ? "." : path, n);
    dir[n] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = io_fail(err, label, "sync the directory", dir, errno);
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

/* Write all of data to fd. */
static int write_all(int fd, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    const struct fs_owner *owner, const char *label, struct rv_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp");
    int fd = -1, rc = 0;
    if (tmp == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "%s%sout of memory", label ? label : "",
                            label ? ": " : "");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", sizeof ".tmp");
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = io_fail(err, label, "create", tmp, errno);
        goto out;
    }
    if (owner != NULL && fchown(fd, owner->uid, owner->gid) != 0)
        rc = io_fail(err, label, "chown", tmp, errno);
    else if (fchmod(fd, mode) != 0)
        rc = io_fail(err, label, "chmod", tmp, errno);
    else if (write_all(fd, data, len) != 0)
        rc = io_fail(err, label, "write", tmp, errno);
    else if (fsync(fd) != 0)
        rc = io_fail(err, label, "sync", tmp, errno);
    if (close(fd) != 0 && rc == 0)
        rc = io_fail(err, label, "sync", tmp, errno);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = io_fail(err, label, "rename", tmp, errno);
    if (rc == 0)
        rc = fs_sync_parent(path, label, err);
out:
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}
