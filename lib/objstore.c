/* objstore.c - key checking, stream copying, and the local-directory object
 * store (see objstore.h).
 *
 * A local store keeps each object as a file <root>/<key>. A put writes a
 * hidden temporary file ".<name>.tmp-<16 hex>" in the target directory,
 * fsyncs it, renames it over <name> and fsyncs the directory, so a reader
 * sees the old object or the whole new one, and a crash leaves at most a
 * hidden temporary file, which list skips. Key segments never start with
 * '.', so no key can name a temporary file.
 */
#include "objstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"

/* A full path: the root, '/', a key, and room for a temporary suffix. */
#define LOCAL_PATH_SIZE (RV_PATH_MAX + 1)
/* Bytes of randomness in a temporary name (16 hex characters). */
#define LOCAL_TMP_RANDOM 8

static bool key_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Check one segment [s, s + len) of key. */
static int segment_check(const char *key, const char *s, size_t len, struct rv_error *err)
{
    if (len == 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "object key '%.64s': empty segment (no leading, trailing or "
                            "double '/')",
                            key);
    if (len > RV_OBJSTORE_SEGMENT_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "object key '%.64s...': a segment is longer than %d bytes", key,
                            RV_OBJSTORE_SEGMENT_MAX);
    if (s[0] == '.')
        return rv_error_set(err, RV_EINVAL, false,
                            "object key '%.64s': a segment starts with '.' (\".\", \"..\" and "
                            "hidden names are not allowed)",
                            key);
    for (size_t i = 0; i < len; i++) {
        if (!key_char_ok(s[i]))
            return rv_error_set(err, RV_EINVAL, false,
                                "object key '%.64s': character 0x%02x is not allowed (use "
                                "A-Z a-z 0-9 . _ - and '/' between segments)",
                                key, (unsigned char)s[i]);
    }
    return 0;
}

int objstore_key_check(const char *key, struct rv_error *err)
{
    if (key == NULL || key[0] == '\0')
        return rv_error_set(err, RV_EINVAL, false, "object key is empty");
    size_t len = strnlen(key, RV_OBJSTORE_KEY_MAX + 1);
    if (len > RV_OBJSTORE_KEY_MAX)
        return rv_error_set(err, RV_EINVAL, false, "object key '%.64s...' is longer than %d bytes",
                            key, RV_OBJSTORE_KEY_MAX);
    size_t segments = 0;
    const char *s = key;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
        int rc = segment_check(key, s, n, err);
        if (rc != 0)
            return rc;
        if (++segments > RV_OBJSTORE_DEPTH_MAX)
            return rv_error_set(err, RV_EINVAL, false,
                                "object key '%.64s' has more than %d segments", key,
                                RV_OBJSTORE_DEPTH_MAX);
        if (slash == NULL)
            break;
        s = slash + 1;
    }
    return 0;
}

void objstore_entries_free(struct objstore_entry *e, size_t n)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(e[i].key);
    free(e);
}

int objstore_copy(struct rv_sink *dst, struct rv_source *src, uint64_t *copied,
                  struct rv_error *err)
{
    uint64_t total = 0;
    int rc = 0;
    char *buf = malloc(RV_OBJSTORE_COPY_BUF);
    if (buf == NULL) {
        rv_sink_abort(dst);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory copying an object");
    }
    for (;;) {
        size_t n = 0;
        rc = rv_source_read(src, buf, RV_OBJSTORE_COPY_BUF, &n, err);
        if (rc != 0 || n == 0)
            break;
        rc = rv_sink_write(dst, buf, n, err);
        if (rc != 0)
            break;
        total += n;
    }
    free(buf);
    if (rc != 0) {
        rv_sink_abort(dst);
        return rc;
    }
    rc = rv_sink_finish(dst, err);
    if (rc == 0 && copied != NULL)
        *copied = total;
    return rc;
}

/* ---- the local store ---- */

struct local_store {
    struct objstore base;
    char *root; /* without a trailing '/'; "" for the filesystem root */
};

struct local_sink {
    struct rv_sink base;
    int fd;
    bool failed; /* a write failed: finish must not commit */
    char tmp[LOCAL_PATH_SIZE];
    char path[LOCAL_PATH_SIZE];
};

struct local_source {
    struct rv_source base;
    int fd;
    char path[LOCAL_PATH_SIZE];
};

static int io_error(struct rv_error *err, const char *what, const char *path, int e)
{
    /* A full disk or a quota may clear; other errors need a person. */
    bool retry = e == ENOSPC || e == EDQUOT || e == EINTR || e == EAGAIN;
    return rv_error_set(err, RV_EIO, retry, "cannot %s '%s': %s", what, path, strerror(e));
}

static int local_path(char *out, const struct local_store *ls, const char *key,
                      struct rv_error *err)
{
    int rc = objstore_key_check(key, err);
    if (rc != 0)
        return rc;
    int n = snprintf(out, LOCAL_PATH_SIZE, "%s/%s", ls->root, key);
    if (n < 0 || (size_t)n >= LOCAL_PATH_SIZE)
        return rv_error_set(err, RV_ELIMIT, false, "path of object '%s' is too long", key);
    return 0;
}

/* fsync the directory at path (the parent of a new or renamed entry). */
static int fsync_dir(const char *path, struct rv_error *err)
{
    int fd = open(path[0] != '\0' ? path : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_error(err, "open directory", path, errno);
    int rc = 0;
    if (fsync(fd) != 0)
        rc = io_error(err, "sync directory", path, errno);
    close(fd);
    return rc;
}

/* Create the directories leading to the file path (those below its first
 * root_len bytes, the root), 0700, syncing each new one's parent. */
static int mkdirs(const char *path, size_t root_len, struct rv_error *err)
{
    char p[LOCAL_PATH_SIZE];
    size_t len = strlen(path);
    memcpy(p, path, len + 1);
    for (size_t i = root_len + 1; i < len; i++) {
        if (p[i] != '/')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0700) == 0) {
            char *slash = strrchr(p, '/');
            *slash = '\0';
            int rc = fsync_dir(p, err);
            *slash = '/';
            if (rc != 0)
                return rc;
        } else if (errno != EEXIST) {
            return io_error(err, "create directory", p, errno);
        }
        p[i] = '/';
    }
    return 0;
}

static int local_sink_write(struct rv_sink *s, const void *data, size_t len, struct rv_error *err)
{
    struct local_sink *ls = (struct local_sink *)s;
    const char *p = data;
    if (ls->failed)
        return rv_error_set(err, RV_EIO, false, "cannot write '%s': an earlier write failed",
                            ls->path);
    while (len > 0) {
        ssize_t n = write(ls->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ls->failed = true;
            return io_error(err, "write", ls->path, n < 0 ? errno : EIO);
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void local_sink_abort(struct rv_sink *s)
{
    struct local_sink *ls = (struct local_sink *)s;
    if (ls->fd >= 0)
        close(ls->fd);
    unlink(ls->tmp);
    free(ls);
}

static int local_sink_finish(struct rv_sink *s, struct rv_error *err)
{
    struct local_sink *ls = (struct local_sink *)s;
    int rc = 0;
    if (ls->failed) {
        rc = rv_error_set(err, RV_EIO, false, "cannot store '%s': an earlier write failed",
                          ls->path);
        goto fail;
    }
    if (fsync(ls->fd) != 0) {
        rc = io_error(err, "sync", ls->tmp, errno);
        goto fail;
    }
    int fd = ls->fd;
    ls->fd = -1;
    if (close(fd) != 0) {
        rc = io_error(err, "close", ls->tmp, errno);
        goto fail;
    }
    if (rename(ls->tmp, ls->path) != 0) {
        rc = io_error(err, "rename into place", ls->path, errno);
        goto fail;
    }
    /* The directory sync makes the rename durable. If it fails the caller is
     * told the put failed, so the object is removed again: a failed finish
     * leaves no object a record might not know of. */
    char dir[LOCAL_PATH_SIZE];
    memcpy(dir, ls->path, sizeof(dir));
    *strrchr(dir, '/') = '\0';
    rc = fsync_dir(dir, err);
    if (rc != 0)
        unlink(ls->path);
    free(ls);
    return rc;
fail:
    local_sink_abort(s);
    return rc;
}

static int local_put(struct objstore *o, const char *key, struct rv_sink **out,
                     struct rv_error *err)
{
    struct local_store *st = (struct local_store *)o;
    *out = NULL;
    struct local_sink *ls = calloc(1, sizeof(*ls));
    if (ls == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    ls->fd = -1;
    int rc = local_path(ls->path, st, key, err);
    if (rc != 0)
        goto fail;

    uint8_t rnd[LOCAL_TMP_RANDOM];
    char hex[2 * LOCAL_TMP_RANDOM + 1];
    const char *slash = strrchr(ls->path, '/');
    size_t dir_len = (size_t)(slash - ls->path);
    if (crypto_random(rnd, sizeof(rnd)) != 0 ||
        crypto_hex_encode(hex, sizeof(hex), rnd, sizeof(rnd)) != 0) {
        rc = rv_error_set(err, RV_ECRYPTO, false, "cannot get random bytes for a file name");
        goto fail;
    }
    int n = snprintf(ls->tmp, sizeof(ls->tmp), "%.*s/.%s.tmp-%s", (int)dir_len, ls->path, slash + 1,
                     hex);
    if (n < 0 || (size_t)n >= sizeof(ls->tmp)) {
        rc = rv_error_set(err, RV_ELIMIT, false, "path of object '%s' is too long", key);
        goto fail;
    }
    /* A concurrent remove may delete the directory between mkdirs and open. */
    for (int i = 0; i < RV_OBJSTORE_PUT_TRIES && ls->fd < 0; i++) {
        rc = mkdirs(ls->tmp, strlen(st->root), err);
        if (rc != 0)
            goto fail;
        ls->fd = open(ls->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (ls->fd < 0 && errno != ENOENT)
            break;
    }
    if (ls->fd < 0) {
        rc = io_error(err, "create", ls->tmp, errno);
        goto fail;
    }
    ls->base.write = local_sink_write;
    ls->base.finish = local_sink_finish;
    ls->base.abort = local_sink_abort;
    *out = &ls->base;
    return 0;
fail:
    free(ls);
    return rc;
}

static int local_source_read(struct rv_source *s, void *buf, size_t cap, size_t *n,
                             struct rv_error *err)
{
    struct local_source *src = (struct local_source *)s;
    *n = 0;
    for (;;) {
        ssize_t r = read(src->fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return io_error(err, "read", src->path, errno);
        *n = (size_t)r;
        return 0;
    }
}

static void local_source_close(struct rv_source *s)
{
    struct local_source *src = (struct local_source *)s;
    close(src->fd);
    free(src);
}

static int not_found(struct rv_error *err, const struct local_store *st, const char *key)
{
    return rv_error_set(err, RV_ENOTFOUND, false, "no object '%s' in '%s'", key,
                        st->root[0] != '\0' ? st->root : "/");
}

static int local_get(struct objstore *o, const char *key, struct rv_source **out,
                     struct rv_error *err)
{
    struct local_store *st = (struct local_store *)o;
    *out = NULL;
    struct local_source *src = calloc(1, sizeof(*src));
    if (src == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    struct stat sb;
    int rc = local_path(src->path, st, key, err);
    if (rc != 0)
        goto fail;
    src->fd = open(src->path, O_RDONLY | O_CLOEXEC);
    if (src->fd < 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? not_found(err, st, key)
                                                 : io_error(err, "open", src->path, errno);
        goto fail;
    }
    if (fstat(src->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(src->fd);
        rc = not_found(err, st, key);
        goto fail;
    }
    src->base.read = local_source_read;
    src->base.close = local_source_close;
    *out = &src->base;
    return 0;
fail:
    free(src);
    return rc;
}

static int local_stat(struct objstore *o, const char *key, int64_t *size, struct rv_error *err)
{
    struct local_store *st = (struct local_store *)o;
    char path[LOCAL_PATH_SIZE];
    struct stat sb;
    int rc = local_path(path, st, key, err);
    if (rc != 0)
        return rc;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return not_found(err, st, key);
        return io_error(err, "stat", path, errno);
    }
    if (!S_ISREG(sb.st_mode))
        return not_found(err, st, key);
    *size = (int64_t)sb.st_size;
    return 0;
}

static int local_remove(struct objstore *o, const char *key, struct rv_error *err)
{
    struct local_store *st = (struct local_store *)o;
    char path[LOCAL_PATH_SIZE];
    int rc = local_path(path, st, key, err);
    if (rc != 0)
        return rc;
    if (unlink(path) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return io_error(err, "delete", path, errno);
    }
    /* Prune directories the removal emptied (a non-empty one stops it), so
     * expired backups leave no empty base/<id>/ behind. */
    size_t root_len = strlen(st->root);
    for (char *slash = strrchr(path, '/'); slash != NULL && (size_t)(slash - path) > root_len;
         slash = strrchr(path, '/')) {
        *slash = '\0';
        if (rmdir(path) != 0)
            break;
    }
    return 0;
}

struct list_ctx {
    const char *prefix;
    size_t prefix_len;
    struct objstore_entry *v;
    size_t n, cap;
    char key[RV_OBJSTORE_KEY_MAX + 2];
    const char *root;
};

static bool name_ok(const char *name)
{
    if (name[0] == '.' || name[0] == '\0')
        return false;
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        if (!key_char_ok(name[i]) || i >= RV_OBJSTORE_SEGMENT_MAX)
            return false;
    }
    return true;
}

/* Can a key below directory key[0, len) (followed by '/') start with the prefix? */
static bool dir_may_match(const struct list_ctx *c, size_t len)
{
    size_t m = len < c->prefix_len ? len : c->prefix_len;
    if (memcmp(c->key, c->prefix, m) != 0)
        return false;
    return c->prefix_len <= len || c->prefix[len] == '/';
}

static int list_add(struct list_ctx *c, const struct stat *sb, struct rv_error *err)
{
    if (c->n == RV_OBJSTORE_LIST_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "more than %d objects under '%s' with prefix '%s': list a narrower "
                            "prefix",
                            RV_OBJSTORE_LIST_MAX, c->root, c->prefix);
    if (c->n == c->cap) {
        size_t cap = c->cap != 0 ? c->cap * 2 : 64;
        struct objstore_entry *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory listing objects");
        c->v = v;
        c->cap = cap;
    }
    char *k = strdup(c->key);
    if (k == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory listing objects");
    c->v[c->n].key = k;
    c->v[c->n].size = (int64_t)sb->st_size;
    c->v[c->n].mtime = (int64_t)sb->st_mtim.tv_sec;
    c->n++;
    return 0;
}

static int list_dir(struct list_ctx *c, int dfd, size_t len, int depth, struct rv_error *err);

/* One directory entry named name in directory dfd (key[0, len) is its key). */
static int list_entry(struct list_ctx *c, int dfd, size_t len, int depth, const char *name,
                      struct rv_error *err)
{
    struct stat sb;
    if (!name_ok(name))
        return 0; /* temporary files, and names no key can address */
    size_t nlen = strlen(name);
    size_t klen = len + (len > 0) + nlen;
    if (klen > RV_OBJSTORE_KEY_MAX)
        return 0;
    if (len > 0)
        c->key[len] = '/';
    memcpy(c->key + len + (len > 0), name, nlen + 1);
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return 0; /* removed meanwhile */
        return io_error(err, "stat", c->key, errno);
    }
    if (S_ISREG(sb.st_mode)) {
        if (strncmp(c->key, c->prefix, c->prefix_len) != 0)
            return 0;
        return list_add(c, &sb, err);
    }
    if (!S_ISDIR(sb.st_mode) || !dir_may_match(c, klen) || depth + 1 >= RV_OBJSTORE_DEPTH_MAX)
        return 0;
    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
        if (errno == ENOENT)
            return 0;
        return io_error(err, "open directory", c->key, errno);
    }
    return list_dir(c, sub, klen, depth + 1, err);
}

/* Walk the directory open as dfd (closed here) whose key is key[0, len). */
static int list_dir(struct list_ctx *c, int dfd, size_t len, int depth, struct rv_error *err)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = errno;
        close(dfd);
        return io_error(err, "read directory", c->root, e);
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = io_error(err, "read directory", c->root, errno);
            break;
        }
        rc = list_entry(c, dirfd(d), len, depth, de->d_name, err);
        if (rc != 0)
            break;
    }
    closedir(d);
    c->key[len] = '\0';
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct objstore_entry *)a)->key, ((const struct objstore_entry *)b)->key);
}

static int local_list(struct objstore *o, const char *prefix, struct objstore_entry **out,
                      size_t *n, struct rv_error *err)
{
    struct local_store *st = (struct local_store *)o;
    struct list_ctx c = {.prefix = prefix != NULL ? prefix : ""};
    c.prefix_len = strlen(c.prefix);
    c.root = st->root[0] != '\0' ? st->root : "/";
    *out = NULL;
    *n = 0;
    int dfd = open(c.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return io_error(err, "open directory", c.root, errno);
    int rc = list_dir(&c, dfd, 0, 0, err);
    if (rc != 0) {
        objstore_entries_free(c.v, c.n);
        return rc;
    }
    if (c.n > 1)
        qsort(c.v, c.n, sizeof(*c.v), entry_cmp);
    *out = c.v;
    *n = c.n;
    return 0;
}

static void local_free(struct objstore *o)
{
    struct local_store *st = (struct local_store *)o;
    if (st == NULL)
        return;
    free(st->root);
    free(st);
}

int objstore_local_new(struct objstore **out, const char *root, struct rv_error *err)
{
    *out = NULL;
    if (root == NULL || root[0] != '/')
        return rv_error_set(err, RV_EINVAL, false,
                            "local backup destination '%s' must be an absolute path",
                            root != NULL ? root : "");
    size_t len = strlen(root);
    while (len > 1 && root[len - 1] == '/')
        len--;
    if (len == 1)
        len = 0; /* "/": keys are appended after a '/' */
    if (len + RV_OBJSTORE_KEY_MAX + 32 > RV_PATH_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "local backup destination '%.64s...' is longer than %d bytes", root,
                            RV_PATH_MAX - RV_OBJSTORE_KEY_MAX - 32);
    struct stat sb;
    if (stat(root, &sb) != 0)
        return io_error(err, "use local backup destination", root, errno);
    if (!S_ISDIR(sb.st_mode))
        return rv_error_set(err, RV_EINVAL, false,
                            "local backup destination '%s' is not a directory", root);
    struct local_store *st = calloc(1, sizeof(*st));
    char *r = strndup(root, len);
    if (st == NULL || r == NULL) {
        free(st);
        free(r);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    st->root = r;
    st->base.put = local_put;
    st->base.get = local_get;
    st->base.stat = local_stat;
    st->base.list = local_list;
    st->base.remove = local_remove;
    st->base.free = local_free;
    *out = &st->base;
    return 0;
}
