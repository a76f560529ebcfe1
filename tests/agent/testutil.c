/* testutil.c - helpers shared by the tests in tests/agent/ that run real
 * database servers (see testutil.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

/* The most arguments tu_spawn_as passes on (the tests pass far fewer). */
#define TU_SPAWN_ARGS_MAX 32

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tu_now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t tu_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int tu_port(int salt)
{
    return 20000 + (int)((getpid() + salt) % 20000);
}

const char *tu_os_user(const char *os_user)
{
    return geteuid() == 0 ? os_user : NULL;
}

int tu_chown(const char *path, const char *os_user)
{
    if (tu_os_user(os_user) == NULL)
        return 0;
    struct passwd *pw = getpwnam(os_user);
    if (pw == NULL || chown(path, pw->pw_uid, pw->pw_gid) != 0) {
        fprintf(stderr, "cannot give %s to user %s\n", path, os_user);
        return -1;
    }
    return 0;
}

int tu_tmpdir(char *dir, size_t cap, const char *name, const char *os_user, mode_t mode)
{
    int n = snprintf(dir, cap, "/tmp/%s-XXXXXX", name);
    if (n < 0 || (size_t)n >= cap || mkdtemp(dir) == NULL) {
        fprintf(stderr, "cannot make a temporary directory for %s\n", name);
        dir[0] = '\0';
        return -1;
    }
    if (tu_chown(dir, os_user) != 0)
        return -1;
    return chmod(dir, mode);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int tu_rm_tree(const char *dir)
{
    return nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_rm_test_dir(const char *dir)
{
    if (dir[0] != '\0' && getenv("REEVE_KEEP_TEST_DIRS") == NULL)
        tu_rm_tree(dir);
}

void tu_wait_value(tu_query_fn query, const void *node, const char *who, const char *q,
                   const char *want, int ms)
{
    char got[256] = "";
    int64_t deadline = tu_now_ms() + ms;
    while (tu_now_ms() < deadline) {
        if (query(node, q, got, sizeof got) && strcmp(got, want) == 0)
            return;
        tu_sleep_ms(50);
    }
    fail_msg("%s: '%s' gave '%s', want '%s' within %d ms", who, q, got, want, ms);
}

/* In the child: never returns. */
static void spawn_child(const char *os_user, const char *path, char **argv, int out_fd,
                        const char *env_name, const char *env_value)
{
    if (out_fd < 0) {
        out_fd = open("/dev/null", O_WRONLY);
        if (dup2(out_fd, 2) < 0)
            _exit(126);
    }
    if (dup2(out_fd, 1) < 0)
        _exit(126);
    if (tu_os_user(os_user) != NULL) {
        struct passwd *pw = getpwnam(os_user);
        if (pw == NULL || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(126);
    }
    if (chdir("/tmp") != 0)
        _exit(126);
    if (env_name != NULL)
        setenv(env_name, env_value, 1);
    execv(path, argv);
    _exit(127);
}

pid_t tu_spawn_as(const char *os_user, const char *path, const char *const *args, int out_fd,
                  const char *env_name, const char *env_value)
{
    char *argv[TU_SPAWN_ARGS_MAX + 1];
    size_t n = 0;
    argv[n++] = (char *)path;
    for (size_t i = 1; args[i] != NULL; i++) {
        if (n == TU_SPAWN_ARGS_MAX) {
            fprintf(stderr, "%s: more than %d arguments\n", path, TU_SPAWN_ARGS_MAX);
            return -1;
        }
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0)
        spawn_child(os_user, path, argv, out_fd, env_name, env_value);
    return pid;
}

int tu_wait_exit(pid_t pid)
{
    int status = 0;
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
