/* test_fsutil.c - lib/fsutil: a file replaced atomically holds the new
 * bytes with the mode asked, no temporary is left, a failure leaves the
 * old file and says what failed; reading a file whole is bounded, and a
 * first line comes without its line end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

static char dir[] = "/tmp/reeve-test-fsutil-XXXXXX";

static void slurp(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void test_write_and_replace(void **state)
{
    char path[128], tmp[160], got[64];
    struct stat st;
    struct rv_error err = {0};
    (void)state;
    snprintf(path, sizeof(path), "%s/a.conf", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(fs_write_atomic(path, "one\n", 4, 0640, NULL, "test", &err), 0);
    slurp(path, got, sizeof(got));
    assert_string_equal(got, "one\n");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    struct fs_owner me = {getuid(), getgid()};
    assert_int_equal(fs_write_atomic(path, "two", 3, 0600, &me, "test", &err), 0);
    slurp(path, got, sizeof(got));
    assert_string_equal(got, "two");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_not_equal(access(tmp, F_OK), 0);
}

static void test_failure(void **state)
{
    char path[128];
    struct rv_error err = {0};
    (void)state;
    snprintf(path, sizeof(path), "%s/missing/a.conf", dir);
    assert_int_equal(fs_write_atomic(path, "x", 1, 0600, NULL, "test", &err), RV_EIO);
    assert_non_null(strstr(err.msg, "test: cannot create '"));
    assert_non_null(strstr(err.msg, "/missing/a.conf.tmp'"));
    /* Without a label, no prefix. */
    assert_int_equal(fs_write_atomic(path, "x", 1, 0600, NULL, NULL, &err), RV_EIO);
    assert_true(strncmp(err.msg, "cannot create '", 15) == 0);
    /* The old file stays when the temporary cannot be written. */
    char ok[128], tmpdir[160];
    snprintf(ok, sizeof(ok), "%s/b.conf", dir);
    snprintf(tmpdir, sizeof(tmpdir), "%s.tmp", ok);
    assert_int_equal(fs_write_atomic(ok, "old", 3, 0600, NULL, NULL, &err), 0);
    assert_int_equal(mkdir(tmpdir, 0700), 0); /* the temporary's name is taken */
    assert_int_equal(fs_write_atomic(ok, "new", 3, 0600, NULL, NULL, &err), RV_EIO);
    char got[16];
    slurp(ok, got, sizeof(got));
    assert_string_equal(got, "old");
    rmdir(tmpdir);
}

static void test_read(void **state)
{
    char path[128], line[8];
    struct buf b = BUF_INIT;
    struct rv_error err = {0};
    (void)state;
    snprintf(path, sizeof(path), "%s/r.txt", dir);
    assert_int_equal(fs_write_atomic(path, "primary\r\nmore\n", 14, 0600, NULL, NULL, &err), 0);
    assert_int_equal(buf_puts(&b, ">"), 0);
    assert_int_equal(fs_read_file(&b, path, 14, "test", &err), 0);
    assert_string_equal(b.data, ">primary\r\nmore\n");
    buf_clear(&b);
    assert_int_equal(fs_read_file(&b, path, 13, "test", &err), RV_ELIMIT);
    assert_non_null(strstr(err.msg, "test: '"));
    assert_non_null(strstr(err.msg, "r.txt' is larger than 13 bytes"));
    buf_release(&b);
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(fs_read_file(&b, path, 10, NULL, &err), RV_ENOTFOUND);
    assert_true(strncmp(err.msg, "cannot open '", 13) == 0);
    buf_release(&b);
    /* An empty file: "" (never NULL). */
    snprintf(path, sizeof(path), "%s/empty", dir);
    assert_int_equal(fs_write_atomic(path, "", 0, 0600, NULL, NULL, &err), 0);
    assert_int_equal(fs_read_file(&b, path, 10, NULL, &err), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    buf_release(&b);

    snprintf(path, sizeof(path), "%s/r.txt", dir);
    fs_read_line(path, line, sizeof(line));
    assert_string_equal(line, "primary");
    snprintf(path, sizeof(path), "%s/none", dir);
    fs_read_line(path, line, sizeof(line));
    assert_string_equal(line, "");
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_and_replace),
        cmocka_unit_test(test_failure),
        cmocka_unit_test(test_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
