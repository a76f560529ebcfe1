/* test_child.c - lib/child: exit codes, the output tail, the deadline
 * killing the whole process group, cancel, a pipeline, spawn with pipes,
 * and the uid switch (as root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "err.h"

static char *const env[] = {(char *)"PATH=/usr/bin:/bin", (char *)"LC_ALL=C", NULL};

/* Run sh -c script with a timeout; returns child_run's code. */
static int sh(struct child_result *r, const char *script, int timeout_ms, size_t max,
              const atomic_bool *cancel, struct rv_error *err)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct child_spec s = {.argv = argv, .envp = env, .label = "test"};
    struct child_opts o = {.timeout_ms = timeout_ms, .output_max = max, .cancel = cancel};
    return child_run(r, &s, 1, &o, err);
}

static void test_exit_codes(void **state)
{
    struct child_result r;
    struct rv_error err = {0};
    (void)state;
    assert_int_equal(sh(&r, "echo hello; echo oops >&2; exit 3", 5000, 0, NULL, &err), 0);
    assert_int_equal(r.why, 0);
    assert_int_equal(r.exit_code[0], 3);
    assert_string_equal(r.out.data, "hello\noops\n");
    child_result_release(&r);

    assert_int_equal(sh(&r, "kill -9 $$", 5000, 0, NULL, &err), 0);
    assert_int_equal(r.exit_code[0], -1);
    assert_true(WIFSIGNALED(r.status[0]));
    child_result_release(&r);

    /* A program that is not there: exit 127 and a message naming it. */
    const char *argv[] = {"/nonexistent/tool", NULL};
    struct child_spec s = {.argv = argv, .envp = env, .label = "test"};
    struct child_opts o = {.timeout_ms = 5000};
    assert_int_equal(child_run(&r, &s, 1, &o, &err), 0);
    assert_int_equal(r.exit_code[0], 127);
    assert_non_null(strstr(r.out.data, "test: cannot execute '/nonexistent/tool'"));
    child_result_release(&r);
}

static void test_tail_bounded(void **state)
{
    struct child_result r;
    struct rv_error err = {0};
    char line[64];
    (void)state;
    assert_int_equal(sh(&r,
                        "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; "
                        "echo last",
                        10000, 100, NULL, &err),
                     0);
    assert_int_equal(r.exit_code[0], 0);
    assert_int_equal(r.out.len, 100);
    assert_non_null(strstr(r.out.data, "line2999\nlast\n"));
    child_tail_line(line, sizeof line, &r.out);
    assert_int_equal(strlen(line), sizeof line - 1);
    assert_string_equal(line + strlen(line) - 13, "line2999 last");
    child_result_release(&r);
}

/* pid exists and is not a zombie. */
static bool alive(int pid)
{
    char path[64], st[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(st, 1, sizeof st - 1, f);
    fclose(f);
    st[n] = '\0';
    const char *p = strrchr(st, ')');
    return p && p[1] == ' ' && p[2] != 'Z';
}

/* The child leaves a grandchild holding the pipe; the deadline kills both. */
static void test_timeout_kills_group(void **state)
{
    struct child_result r;
    struct rv_error err = {0};
    char pidfile[] = "/tmp/reeve-test-child-XXXXXX";
    char script[256];
    (void)state;
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s; echo started; wait", pidfile);
    int64_t t0 = child_now_ms();
    assert_int_equal(sh(&r, script, 300, 0, NULL, &err), 0);
    int64_t took = child_now_ms() - t0;
    assert_int_equal(r.why, RV_ETIMEOUT);
    assert_int_equal(r.exit_code[0], -1);
    assert_true(took >= 300 && took < 5000);
    assert_string_equal(r.out.data, "started\n");
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    unlink(pidfile);
    /* The grandchild was in the group: killed (gone, or a zombie until
     * init reaps it). */
    bool dead = false;
    for (int i = 0; i < 200 && !dead; i++) {
        dead = !alive(pid);
        if (!dead)
            usleep(10000);
    }
    assert_true(dead);
    child_result_release(&r);
}

static atomic_bool cancel_flag;

static void *set_cancel(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    atomic_store(&cancel_flag, true);
    return NULL;
}

static void test_cancel(void **state)
{
    struct child_result r;
    struct rv_error err = {0};
    pthread_t t;
    (void)state;
    atomic_store(&cancel_flag, false);
    assert_int_equal(pthread_create(&t, NULL, set_cancel, NULL), 0);
    int64_t t0 = child_now_ms();
    assert_int_equal(sh(&r, "sleep 30", 20000, 0, &cancel_flag, &err), 0);
    assert_int_equal(r.why, RV_ECANCELED);
    assert_true(child_now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    child_result_release(&r);
}

/* producer | consumer with the pipe between them handed over. */
static void test_pipeline(void **state)
{
    struct child_result r;
    struct rv_error err = {0};
    int p[2];
    (void)state;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    const char *a[] = {"/bin/sh", "-c", "echo one; echo two; echo note >&2", NULL};
    const char *b[] = {"/bin/sh", "-c", "wc -l >&2; exit 4", NULL};
    struct child_spec s[2] = {
        {.argv = a, .envp = env, .out = CHILD_IO_FD, .out_fd = p[1]},
        {.argv = b, .envp = env, .in = CHILD_IO_FD, .in_fd = p[0]},
    };
    struct child_opts o = {.timeout_ms = 5000, .close_after_spawn = p, .n_close = 2};
    assert_int_equal(child_run(&r, s, 2, &o, &err), 0);
    assert_int_equal(p[0], -1);
    assert_int_equal(p[1], -1);
    assert_int_equal(r.exit_code[0], 0);
    assert_int_equal(r.exit_code[1], 4);
    assert_non_null(strstr(r.out.data, "note"));
    assert_non_null(strstr(r.out.data, "2"));
    assert_null(strstr(r.out.data, "one"));
    child_result_release(&r);
}

/* Streaming: write the child's stdin, read its stdout, reap. */
static void test_spawn_pipes(void **state)
{
    struct child c = CHILD_INIT;
    struct rv_error err = {0};
    char got[64] = {0};
    int status = -1;
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "tr a-z A-Z; exit 5", NULL};
    struct child_spec s = {
        .argv = argv, .envp = env, .in = CHILD_IO_PIPE, .out = CHILD_IO_PIPE, .err = CHILD_IO_NULL};
    assert_int_equal(child_spawn(&c, &s, -1, &err), 0);
    assert_true(c.in >= 0 && c.out >= 0 && c.err == -1);
    assert_int_equal(write(c.in, "abc\n", 4), 4);
    close(c.in);
    c.in = -1;
    size_t n = 0;
    for (ssize_t k; (k = read(c.out, got + n, sizeof got - 1 - n)) > 0;)
        n += (size_t)k;
    assert_string_equal(got, "ABC\n");
    assert_int_equal(child_reap(&status, &c, child_now_ms() + 5000, NULL), 0);
    assert_int_equal(child_exit_code(status), 5);
    assert_int_equal(c.pid, -1);
    child_release(&c);

    /* Capture without a capture descriptor is refused. */
    struct child_spec bad = {.argv = argv, .envp = env, .label = "test"};
    assert_int_equal(child_spawn(&c, &bad, -1, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "test: no descriptor for the stdout"));

    /* child_release kills a child still running, with its group. */
    const char *slow[] = {"/bin/sleep", "30", NULL};
    struct child_spec s2 = {.argv = slow, .envp = env, .out = CHILD_IO_NULL, .err = CHILD_IO_NULL};
    assert_int_equal(child_spawn(&c, &s2, -1, &err), 0);
    pid_t pid = c.pid;
    assert_int_equal(child_reap(&status, &c, child_now_ms() + 100, NULL), RV_ETIMEOUT);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(child_spawn(&c, &s2, -1, &err), 0);
    pid = c.pid;
    child_release(&c);
    assert_int_equal(kill(pid, 0), -1);
}

static void test_uid_switch(void **state)
{
    struct child_result r;
    struct rv_error err = {0};
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    const char *argv[] = {"/bin/sh", "-c", "id -u; id -g; id -G; pwd", NULL};
    struct child_spec s = {.argv = argv,
                           .envp = env,
                           .run_as = true,
                           .uid = pw->pw_uid,
                           .gid = pw->pw_gid,
                           .cwd = "/tmp"};
    struct child_opts o = {.timeout_ms = 5000};
    char want[128];
    assert_int_equal(child_run(&r, &s, 1, &o, &err), 0);
    assert_int_equal(r.exit_code[0], 0);
    snprintf(want, sizeof want, "%u\n%u\n%u\n/tmp\n", (unsigned)pw->pw_uid, (unsigned)pw->pw_gid,
             (unsigned)pw->pw_gid);
    assert_string_equal(r.out.data, want);
    child_result_release(&r);
}

/* With the caller's stdin closed, /dev/null opens as descriptor 0: the
 * child must still get it as its stdin. */
static void test_stdio_closed(void **state)
{
    struct child c = CHILD_INIT;
    struct rv_error err = {0};
    char got[64] = {0};
    int status = -1;
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "cat && echo ok", NULL};
    struct child_spec s = {.argv = argv, .envp = env, .out = CHILD_IO_PIPE, .err = CHILD_IO_NULL};
    int saved = dup(0);
    assert_true(saved >= 0);
    close(0);
    int rc = child_spawn(&c, &s, -1, &err);
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    assert_int_equal(rc, 0);
    size_t n = 0;
    for (ssize_t k; (k = read(c.out, got + n, sizeof got - 1 - n)) > 0;)
        n += (size_t)k;
    assert_int_equal(child_reap(&status, &c, child_now_ms() + 5000, NULL), 0);
    assert_int_equal(child_exit_code(status), 0);
    assert_string_equal(got, "ok\n");
    child_release(&c);
}

/* A detached program is in its own session and not our child. */
static void test_detached(void **state)
{
    struct rv_error err = {0};
    pid_t pid = 0;
    (void)state;
    const char *argv[] = {"/bin/sleep", "30", NULL};
    struct child_spec s = {.argv = argv, .envp = env, .out = CHILD_IO_NULL, .err = CHILD_IO_NULL};
    assert_int_equal(child_spawn_detached(&pid, &s, &err), 0);
    assert_true(pid > 0);
    assert_true(alive(pid));
    assert_true(getsid(pid) != getsid(0));
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    kill(pid, SIGKILL);

    struct child_spec piped = {.argv = argv, .envp = env, .out = CHILD_IO_PIPE, .label = "test"};
    assert_int_equal(child_spawn_detached(&pid, &piped, &err), RV_EINVAL);
    assert_string_equal(err.msg, "test: a detached '/bin/sleep' has no pipes");
}

static void test_env(void **state)
{
    (void)state;
    setenv("REEVE_TEST_DROP_ME", "1", 1);
    setenv("REEVE_TEST_KEEP", "1", 1);
    const char *drop[] = {"REEVE_TEST_DROP", NULL};
    const char *add[] = {"ADDED=1", NULL};
    char **e = child_env(drop, add);
    assert_non_null(e);
    bool kept = false, dropped = true, added = false;
    size_t n = 0;
    for (; e[n]; n++) {
        kept |= strcmp(e[n], "REEVE_TEST_KEEP=1") == 0;
        dropped &= strncmp(e[n], "REEVE_TEST_DROP", 15) != 0;
        added |= strcmp(e[n], "ADDED=1") == 0;
    }
    assert_true(kept && dropped && added);
    assert_string_equal(e[n - 1], "ADDED=1");
    free(e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_tail_bounded),
        cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_spawn_pipes),
        cmocka_unit_test(test_uid_switch),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_detached),
        cmocka_unit_test(test_stdio_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
