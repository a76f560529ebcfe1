/* tutil.h - small helpers shared by the unit tests: diagnostics as printed,
 * shell commands, removing a test's files, and the spec-set fixture of the
 * spec and policy tests. Header-only, as every unit test is one file (see
 * the tests/unit/test_*.c glob in CMakeLists.txt); include it after
 * <cmocka.h>. */
#ifndef REEVE_TEST_TUTIL_H
#define REEVE_TEST_TUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag.h"
#include "spec.h"

/* The diagnostics as printed, one per line (free it). */
static inline char *tu_printed(const struct diag_list *d)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&mem, &len);
    assert_non_null(out);
    diag_list_print(out, d);
    fclose(out);
    return mem;
}

/* Run a shell command made like printf; system()'s result. */
static inline int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int tu_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(cmd));
    return system(cmd);
}

/* Remove dir and all below it; the test fails if that fails. */
static inline void tu_rm_rf(const char *dir)
{
    assert_int_equal(tu_sh("rm -rf '%s'", dir), 0);
}

/* Remove the SQLite database at path with its -wal and -shm files. */
static inline void tu_db_unlink(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char p[4096];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

/* Add a cluster file to set; it must be accepted with no error (the
 * diagnostics are shown when not). */
static inline void tu_add_cluster(struct spec_set *set, const char *path, const char *text)
{
    struct diag_list d;
    diag_list_init(&d);
    assert_int_equal(spec_set_add_buffer(set, SPEC_FILE_CLUSTERS, path, text, strlen(text), &d), 0);
    if (d.errors) {
        char *t = tu_printed(&d);
        fail_msg("spec %s:\n%s", path, t);
    }
    diag_list_release(&d);
}

/* The spec-set fixture: files added to one set, their diagnostics, and a
 * text the test may fill (freed by the teardown). */
struct tspec {
    struct spec_set set;
    struct diag_list diags;
    char *out;
};

static inline int tspec_setup(void **state)
{
    struct tspec *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    spec_set_init(&f->set);
    diag_list_init(&f->diags);
    *state = f;
    return 0;
}

static inline int tspec_teardown(void **state)
{
    struct tspec *f = *state;
    spec_set_release(&f->set);
    diag_list_release(&f->diags);
    free(f->out);
    free(f);
    return 0;
}

/* Add a file of the given kind; it must be accepted. */
static inline void tspec_add(struct tspec *f, enum spec_file_kind kind, const char *path,
                             const char *text)
{
    assert_int_equal(spec_set_add_buffer(&f->set, kind, path, text, strlen(text), &f->diags), 0);
}

#endif
