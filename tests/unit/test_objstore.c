/* test_objstore.c - lib/objstore: key checking, the local-directory store
 * (round trips, replacement, atomicity of put, temporary files, listing
 * order and prefixes, removal) and objstore_copy. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "objstore.h"

struct fixture {
    char dir[64];
    struct objstore *st;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct rv_error err = {0};
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rv-test-objstore-XXXXXX");
    if (mkdtemp(fx->dir) == NULL || objstore_local_new(&fx->st, fx->dir, &err) != 0) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    fx->st->free(fx->st);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void put_str(struct objstore *st, const char *key, const char *text)
{
    struct rv_sink *s = NULL;
    struct rv_error err = {0};
    assert_int_equal(st->put(st, key, &s, &err), 0);
    assert_int_equal(rv_sink_write(s, text, strlen(text), &err), 0);
    assert_int_equal(rv_sink_finish(s, &err), 0);
}

/* The whole object as a string (the caller frees), or NULL with *rc set. */
static char *get_str(struct objstore *st, const char *key, int *rc)
{
    struct rv_source *src = NULL;
    struct rv_error err = {0};
    *rc = st->get(st, key, &src, &err);
    if (*rc != 0)
        return NULL;
    char *out = calloc(1, 1 << 16);
    size_t len = 0;
    for (;;) {
        size_t n = 0;
        /* Small reads: the source must resume where it stopped. */
        assert_int_equal(rv_source_read(src, out + len, 7, &n, &err), 0);
        if (n == 0)
            break;
        len += n;
        assert_true(len < (1 << 16) - 8);
    }
    rv_source_close(src);
    return out;
}

/* Names of every file and directory in dir (not recursive), joined by ' ',
 * sorted. */
static void dir_names(const char *dir, char *out, size_t cap)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
            if (out[0] != '\0')
                strncat(out, " ", cap - strlen(out) - 1);
            strncat(out, names[i]->d_name, cap - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
}

static void test_key_check(void **state)
{
    (void)state;
    struct rv_error err = {0};
    const char *good[] = {"a",
                          "base/20261121T080501Z-3fa9c2d1/data",
                          "wal/00000001/000000010000000000000003",
                          "wal/00000002.history",
                          "A-b_c.d",
                          "x/y..z",
                          "a/b/c/d"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(objstore_key_check(good[i], &err), 0);
    const char *bad[] = {"",     "/a",      "a/",          "a//b", ".",    "..",  "a/./b", "a/../b",
                         "../a", ".hidden", "a/.b.tmp-00", "a b",  "a\\b", "a:b", "é",     "a\nb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rv_error_clear(&err);
        assert_int_equal(objstore_key_check(bad[i], &err), RV_EINVAL);
        assert_int_equal(err.code, RV_EINVAL);
        assert_true(strlen(err.msg) > 10);
    }
    assert_int_equal(objstore_key_check(NULL, &err), RV_EINVAL);

    char key[RV_OBJSTORE_KEY_MAX + 2];
    /* The longest key: segments of 100 and '/' up to the limit. */
    memset(key, 'k', sizeof(key));
    for (size_t i = 100; i < RV_OBJSTORE_KEY_MAX; i += 101)
        key[i] = '/';
    key[RV_OBJSTORE_KEY_MAX] = '\0';
    assert_int_equal(objstore_key_check(key, &err), 0);
    key[RV_OBJSTORE_KEY_MAX] = 'k';
    key[RV_OBJSTORE_KEY_MAX + 1] = '\0';
    assert_int_equal(objstore_key_check(key, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "longer than"));
    /* One segment too long. */
    memset(key, 'k', RV_OBJSTORE_SEGMENT_MAX + 1);
    key[RV_OBJSTORE_SEGMENT_MAX + 1] = '\0';
    assert_int_equal(objstore_key_check(key, &err), RV_EINVAL);
    key[RV_OBJSTORE_SEGMENT_MAX] = '\0';
    assert_int_equal(objstore_key_check(key, &err), 0);
    /* Too many segments. */
    key[0] = '\0';
    for (int i = 0; i <= RV_OBJSTORE_DEPTH_MAX; i++)
        strcat(key, i == 0 ? "d" : "/d");
    assert_int_equal(objstore_key_check(key, &err), RV_EINVAL);
}

static void test_new_checks_root(void **state)
{
    struct fixture *fx = *state;
    struct objstore *st = NULL;
    struct rv_error err = {0};
    assert_int_equal(objstore_local_new(&st, "relative/dir", &err), RV_EINVAL);
    assert_null(st);
    char path[128];
    snprintf(path, sizeof(path), "%s/missing", fx->dir);
    assert_int_equal(objstore_local_new(&st, path, &err), RV_EIO);
    assert_non_null(strstr(err.msg, "missing"));
    put_str(fx->st, "file", "x");
    snprintf(path, sizeof(path), "%s/file", fx->dir);
    assert_int_equal(objstore_local_new(&st, path, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "not a directory"));
    /* A trailing '/' names the same store. */
    snprintf(path, sizeof(path), "%s//", fx->dir);
    assert_int_equal(objstore_local_new(&st, path, &err), 0);
    int rc = 0;
    char *s = get_str(st, "file", &rc);
    assert_string_equal(s, "x");
    free(s);
    st->free(st);
}

static void test_put_get_replace(void **state)
{
    struct fixture *fx = *state;
    struct objstore *st = fx->st;
    struct rv_error err = {0};
    int rc = 0;
    put_str(st, "base/20261121T080501Z-3fa9c2d1/data", "hello backup");
    char *s = get_str(st, "base/20261121T080501Z-3fa9c2d1/data", &rc);
    assert_string_equal(s, "hello backup");
    free(s);
    int64_t size = -1;
    assert_int_equal(st->stat(st, "base/20261121T080501Z-3fa9c2d1/data", &size, &err), 0);
    assert_int_equal(size, 12);

    put_str(st, "base/20261121T080501Z-3fa9c2d1/data", "v2");
    s = get_str(st, "base/20261121T080501Z-3fa9c2d1/data", &rc);
    assert_string_equal(s, "v2");
    free(s);

    /* An empty object is an object. */
    put_str(st, "empty", "");
    s = get_str(st, "empty", &rc);
    assert_string_equal(s, "");
    free(s);

    /* Files 0600, directories 0700, and no leftover temporaries. */
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/base/20261121T080501Z-3fa9c2d1/data", fx->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/base", fx->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    char names[512];
    snprintf(path, sizeof(path), "%s/base/20261121T080501Z-3fa9c2d1", fx->dir);
    dir_names(path, names, sizeof(names));
    assert_string_equal(names, "data");

    /* Absent keys, directories and bad keys. */
    assert_null(get_str(st, "nothing/here", &rc));
    assert_int_equal(rc, RV_ENOTFOUND);
    assert_null(get_str(st, "base", &rc));
    assert_int_equal(rc, RV_ENOTFOUND);
    assert_null(get_str(st, "empty/below-a-file", &rc));
    assert_int_equal(rc, RV_ENOTFOUND);
    assert_int_equal(st->stat(st, "base", &size, &err), RV_ENOTFOUND);
    assert_int_equal(st->stat(st, "nope", &size, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'nope'"));
    struct rv_sink *sink = NULL;
    /* A key naming a directory cannot be put; the temporary file goes. */
    assert_int_equal(st->put(st, "base/20261121T080501Z-3fa9c2d1", &sink, &err), 0);
    assert_int_equal(rv_sink_write(sink, "x", 1, &err), 0);
    assert_int_equal(rv_sink_finish(sink, &err), RV_EIO);
    assert_non_null(strstr(err.msg, "rename"));
    snprintf(path, sizeof(path), "%s/base", fx->dir);
    dir_names(path, names, sizeof(names));
    assert_string_equal(names, "20261121T080501Z-3fa9c2d1");
    sink = NULL;
    assert_int_equal(st->put(st, "../escape", &sink, &err), RV_EINVAL);
    assert_null(sink);
    assert_null(get_str(st, "../etc/passwd", &rc));
    assert_int_equal(rc, RV_EINVAL);
    assert_int_equal(st->remove(st, "a/../../b", &err), RV_EINVAL);
}

static void test_abort_and_crash(void **state)
{
    struct fixture *fx = *state;
    struct objstore *st = fx->st;
    struct rv_error err = {0};
    struct rv_sink *s = NULL;
    struct objstore_entry *e = NULL;
    size_t n = 0;
    char names[512];
    char path[256];
    int rc = 0;

    /* Abort: nothing is left, not even a temporary file. */
    assert_int_equal(st->put(st, "wal/00000001/seg", &s, &err), 0);
    assert_int_equal(rv_sink_write(s, "partial", 7, &err), 0);
    rv_sink_abort(s);
    snprintf(path, sizeof(path), "%s/wal/00000001", fx->dir);
    dir_names(path, names, sizeof(names));
    assert_string_equal(names, "");
    assert_int_equal(st->list(st, "", &e, &n, &err), 0);
    assert_int_equal(n, 0);
    objstore_entries_free(e, n);

    /* An abort while an old version exists keeps the old version. */
    put_str(st, "wal/00000001/seg", "old");
    assert_int_equal(st->put(st, "wal/00000001/seg", &s, &err), 0);
    assert_int_equal(rv_sink_write(s, "new, never finished", 19, &err), 0);
    char *got = get_str(st, "wal/00000001/seg", &rc);
    assert_string_equal(got, "old"); /* in flight: readers see the old one */
    free(got);
    rv_sink_abort(s);
    got = get_str(st, "wal/00000001/seg", &rc);
    assert_string_equal(got, "old");
    free(got);

    /* A crash before finish: the temporary file is there, but no object
     * under the key, and list does not show it. */
    assert_int_equal(st->put(st, "wal/00000001/crashed", &s, &err), 0);
    assert_int_equal(rv_sink_write(s, "half", 4, &err), 0);
    dir_names(path, names, sizeof(names));
    assert_non_null(strstr(names, ".crashed.tmp-"));
    assert_null(get_str(st, "wal/00000001/crashed", &rc));
    assert_int_equal(rc, RV_ENOTFOUND);
    int64_t size = 0;
    assert_int_equal(st->stat(st, "wal/00000001/crashed", &size, &err), RV_ENOTFOUND);
    assert_int_equal(st->list(st, "wal/", &e, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].key, "wal/00000001/seg");
    objstore_entries_free(e, n);
    rv_sink_abort(s);

    /* A process killed in the middle of a put leaves no object either. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rv_sink *cs = NULL;
        if (st->put(st, "wal/00000001/killed", &cs, &err) != 0 ||
            rv_sink_write(cs, "some bytes", 10, &err) != 0)
            _exit(1);
        raise(SIGKILL);
        _exit(2);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    dir_names(path, names, sizeof(names));
    assert_non_null(strstr(names, ".killed.tmp-"));
    assert_null(get_str(st, "wal/00000001/killed", &rc));
    assert_int_equal(rc, RV_ENOTFOUND);

    /* A temporary left by a crashed process, and foreign files no key can
     * name, are skipped too. */
    snprintf(path, sizeof(path), "%s/wal/00000001/.seg2.tmp-0123456789abcdef", fx->dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/wal/00000001/has space", fx->dir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(st->list(st, "", &e, &n, &err), 0);
    assert_int_equal(n, 1);
    objstore_entries_free(e, n);
}

static void test_list(void **state)
{
    struct fixture *fx = *state;
    struct objstore *st = fx->st;
    struct rv_error err = {0};
    struct objstore_entry *e = NULL;
    size_t n = 0;
    /* Put in an order unlike the sorted one. */
    const char *keys[] = {"wal/00000002/000000020000000000000001",
                          "base/b/data",
                          "wal/00000001/000000010000000000000010",
                          "base/a/manifest.json",
                          "wal/00000001/000000010000000000000002",
                          "base/a/data",
                          "wal/00000002.history",
                          "base-not-a-dir",
                          "Zeta"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        put_str(st, keys[i], keys[i]);

    assert_int_equal(st->list(st, "", &e, &n, &err), 0);
    const char *all[] = {"Zeta",
                         "base-not-a-dir",
                         "base/a/data",
                         "base/a/manifest.json",
                         "base/b/data",
                         "wal/00000001/000000010000000000000002",
                         "wal/00000001/000000010000000000000010",
                         "wal/00000002.history",
                         "wal/00000002/000000020000000000000001"};
    assert_int_equal(n, 9);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(e[i].key, all[i]);
        assert_int_equal(e[i].size, (int64_t)strlen(all[i]));
        assert_true(e[i].mtime > 1600000000);
    }
    objstore_entries_free(e, n);

    struct {
        const char *prefix;
        size_t n;
        const char *first;
    } cases[] = {
        {"base/", 3, "base/a/data"},
        {"base", 4, "base-not-a-dir"},
        {"base/a", 2, "base/a/data"},
        {"base/a/m", 1, "base/a/manifest.json"},
        {"wal/00000001/", 2, "wal/00000001/000000010000000000000002"},
        {"wal/00000001/0000000100000000000000", 2, "wal/00000001/000000010000000000000002"},
        {"wal/00000002", 2, "wal/00000002.history"},
        {"wal/00000002/", 1, "wal/00000002/000000020000000000000001"},
        {"Z", 1, "Zeta"},
        {"z", 0, NULL},
        {"base/a/data/x", 0, NULL},
        {"nothing", 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(st->list(st, cases[i].prefix, &e, &n, &err), 0);
        assert_int_equal(n, cases[i].n);
        if (n > 0)
            assert_string_equal(e[0].key, cases[i].first);
        for (size_t j = 0; j < n; j++)
            assert_int_equal(strncmp(e[j].key, cases[i].prefix, strlen(cases[i].prefix)), 0);
        objstore_entries_free(e, n);
    }
    objstore_entries_free(NULL, 0);
}

static void test_remove(void **state)
{
    struct fixture *fx = *state;
    struct objstore *st = fx->st;
    struct rv_error err = {0};
    char names[512];
    int rc = 0;
    put_str(st, "base/x/data", "d");
    put_str(st, "base/x/manifest.json", "m");
    put_str(st, "base/y/data", "d");
    assert_int_equal(st->remove(st, "base/x/data", &err), 0);
    assert_null(get_str(st, "base/x/data", &rc));
    assert_int_equal(rc, RV_ENOTFOUND);
    assert_int_equal(st->remove(st, "base/x/data", &err), 0); /* absent is fine */
    assert_int_equal(st->remove(st, "never/was", &err), 0);
    assert_int_equal(st->remove(st, "base/x/manifest.json", &err), 0);
    /* The emptied base/x/ is gone; base/ and the root stay. */
    char path[256];
    snprintf(path, sizeof(path), "%s/base", fx->dir);
    dir_names(path, names, sizeof(names));
    assert_string_equal(names, "y");
    assert_int_equal(st->remove(st, "base/y/data", &err), 0);
    dir_names(fx->dir, names, sizeof(names));
    assert_string_equal(names, "");
    /* A put after the prune recreates the directories. */
    put_str(st, "base/y/data", "again");
    char *s = get_str(st, "base/y/data", &rc);
    assert_string_equal(s, "again");
    free(s);
}

/* A source over a string, and a sink that fails or counts. */
struct str_source {
    struct rv_source base;
    const char *p;
    size_t left;
};

static int str_read(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err)
{
    (void)err;
    struct str_source *ss = (struct str_source *)s;
    *n = cap < ss->left ? cap : ss->left;
    memcpy(buf, ss->p, *n);
    ss->p += *n;
    ss->left -= *n;
    return 0;
}

static void str_close(struct rv_source *s)
{
    (void)s;
}

struct fail_sink {
    struct rv_sink base;
    int aborted;
};

static int fail_write(struct rv_sink *s, const void *d, size_t len, struct rv_error *err)
{
    (void)s;
    (void)d;
    (void)len;
    return rv_error_set(err, RV_EIO, true, "disk full");
}

static int fail_finish(struct rv_sink *s, struct rv_error *err)
{
    (void)s;
    return rv_error_set(err, RV_EIO, false, "should not be reached");
}

static void fail_abort(struct rv_sink *s)
{
    ((struct fail_sink *)s)->aborted++;
}

static void test_copy(void **state)
{
    struct fixture *fx = *state;
    struct objstore *st = fx->st;
    struct rv_error err = {0};
    struct rv_sink *s = NULL;
    int rc = 0;
    /* Larger than the copy buffer, so several rounds. */
    size_t len = RV_OBJSTORE_COPY_BUF * 2 + 17;
    char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + i % 23);
    struct str_source src = {{str_read, str_close}, big, len};
    assert_int_equal(st->put(st, "copied", &s, &err), 0);
    uint64_t copied = 0;
    assert_int_equal(objstore_copy(s, &src.base, &copied, &err), 0);
    assert_int_equal(copied, len);
    int64_t size = 0;
    assert_int_equal(st->stat(st, "copied", &size, &err), 0);
    assert_int_equal(size, (int64_t)len);
    struct rv_source *in = NULL;
    assert_int_equal(st->get(st, "copied", &in, &err), 0);
    char *back = malloc(len + 1);
    size_t got = 0;
    for (;;) {
        size_t n = 0;
        assert_int_equal(rv_source_read(in, back + got, len + 1 - got, &n, &err), 0);
        if (n == 0)
            break;
        got += n;
    }
    rv_source_close(in);
    assert_int_equal(got, len);
    assert_memory_equal(back, big, len);

    /* A failing sink is aborted and the error comes back. */
    struct fail_sink fs = {{fail_write, fail_finish, fail_abort}, 0};
    struct str_source src2 = {{str_read, str_close}, "abc", 3};
    assert_int_equal(objstore_copy(&fs.base, &src2.base, NULL, &err), RV_EIO);
    assert_string_equal(err.msg, "disk full");
    assert_int_equal(fs.aborted, 1);
    (void)rc;
    free(back);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_check),
        cmocka_unit_test_setup_teardown(test_new_checks_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_and_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
