/* engutil.c - helpers both engine adapters share (see engutil.h). */
#include "engutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int eng_copy_str(char *dst, size_t cap, const char *src, const char *what, const char *label,
                 struct rv_error *err)
{
    if (!src || !*src)
        return rv_error_set(err, RV_EINVAL, false, "%s: '%s' is required", label, what);
    size_t n = strlen(src);
    if (n >= cap)
        return rv_error_set(err, RV_ELIMIT, false, "%s: '%s' is too long (%zu bytes, at most %zu)",
                            label, what, n, cap - 1);
    memcpy(dst, src, n + 1);
    return 0;
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1 to max characters, each alphanumeric or one of extra. */
static bool only(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum(s[i]) && !strchr(extra, s[i]))
            return false;
    return true;
}

bool eng_valid_name(const char *s, size_t max)
{
    return only(s, max, "_-");
}

bool eng_valid_host(const char *s, size_t max)
{
    return only(s, max, ".-:/");
}

bool eng_valid_lower(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

bool eng_valid_path(const char *s, const char *also_refused)
{
    if (s[0] != '/')
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || strchr("'\"\\$` ", c) ||
            (also_refused && strchr(also_refused, c)))
            return false;
    }
    return true;
}

int eng_join_path(char *dst, size_t cap, const char *dir, const char *name, const char *label,
                  struct rv_error *err)
{
    if (snprintf(dst, cap, "%s/%s", dir, name) >= (int)cap)
        return rv_error_set(err, RV_ELIMIT, false, "%s: path '%s/%s' is too long", label, dir,
                            name);
    return 0;
}

int eng_check_empty_dir(const char *path, bool *exists, const char *label, struct rv_error *err)
{
    if (exists)
        *exists = false;
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return rv_error_set(err, RV_EIO, false, "%s: cannot open '%s': %s", label, path,
                            strerror(errno));
    }
    if (exists)
        *exists = true;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            rc = rv_error_set(err, RV_EEXISTS, false,
                              "%s: data directory '%s' is not empty; remove it or use another",
                              label, path);
            break;
        }
    }
    closedir(d);
    return rc;
}

int eng_ensure_dir(const char *path, const struct fs_owner *owner, const char *label,
                   struct rv_error *err)
{
    if (mkdir(path, 0700) != 0) {
        if (errno == EEXIST)
            return 0;
        return rv_error_set(err, RV_EIO, false, "%s: cannot create '%s': %s", label, path,
                            strerror(errno));
    }
    if (owner && chown(path, owner->uid, owner->gid) != 0)
        return rv_error_set(err, RV_EIO, false, "%s: cannot chown '%s': %s", label, path,
                            strerror(errno));
    return 0;
}
