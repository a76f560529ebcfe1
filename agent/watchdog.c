/* watchdog.c - the primary's dead-man switch (see watchdog.h).
 *
 * The child runs only system calls and snprintf into stack buffers: no
 * libuv, no libcurl, no stdio, no malloc. It is forked before the agent
 * starts any thread, so nothing it inherits is held by another thread. */
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "log.h"

#define COMP "watchdog"

/* --- the child --- */

/* One line to stderr (the agent's log) with a single write. */
static void wd_log(const char *level, const char *fmt, ...)
{
    char line[768];
    int n = snprintf(line, sizeof(line), "%s watchdog: ", level);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}

/* Read up to cap-1 bytes of dirfd/name (or path when dirfd is AT_FDCWD). */
static ssize_t read_small(int dirfd, const char *name, char *buf, size_t cap)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t len = 0;
    if (fd < 0)
        return -1;
    while ((size_t)len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - (size_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += n;
    }
    close(fd);
    buf[len] = '\0';
    return len;
}

/* The postmaster's pid from postmaster.pid, checked against /proc: its
 * program is postgres and its working directory is the data directory.
 * 0 when there is none to fence. */
static pid_t postmaster_of(int dfd, const struct stat *dst, const char *data_dir)
{
    char buf[64], path[64], cmd[RV_AGENT_WATCHDOG_CMDLINE_MAX];
    struct stat cst;
    long v = 0;
    ssize_t n = read_small(dfd, "postmaster.pid", buf, sizeof(buf));
    if (n <= 0) {
        wd_log("info", "no '%s/postmaster.pid': the server is not running", data_dir);
        return 0;
    }
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
        v = v * 10 + (buf[i] - '0');
        if (v > 0x3fffffff)
            break;
    }
    if (v <= 1 || v > 0x3fffffff) {
        wd_log("error", "'%s/postmaster.pid' holds no valid pid", data_dir);
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", v);
    n = read_small(AT_FDCWD, path, cmd, sizeof(cmd));
    if (n <= 0) {
        wd_log("info", "postmaster pid %ld is gone", v);
        return 0;
    }
    const char *base = strrchr(cmd, '/');
    base = base != NULL ? base + 1 : cmd;
    if (strcmp(base, "postgres") != 0 && strcmp(base, "postmaster") != 0) {
        wd_log("error", "pid %ld from '%s/postmaster.pid' is '%s', not postgres: not signaling it",
               v, data_dir, base);
        return 0;
    }
    /* The postmaster's working directory is its data directory. */
    snprintf(path, sizeof(path), "/proc/%ld/cwd", v);
    if (stat(path, &cst) != 0 || cst.st_dev != dst->st_dev || cst.st_ino != dst->st_ino) {
        wd_log("error", "postgres pid %ld does not serve '%s': not signaling it", v, data_dir);
        return 0;
    }
    return (pid_t)v;
}

static bool wait_gone(pid_t pid, int ms);

/* A MariaDB server of the data directory (agent/engine_mariadb.c): the pid
 * in mariadbd.pid, a mariadbd whose working directory is the data
 * directory. 0 when there is none. */
static pid_t mariadbd_of(int dfd, const struct stat *dst, const char *data_dir)
{
    char buf[64], path[64], cmd[RV_AGENT_WATCHDOG_CMDLINE_MAX];
    struct stat cst;
    long v = 0;
    ssize_t n = read_small(dfd, "mariadbd.pid", buf, sizeof(buf));
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
        v = v * 10 + (buf[i] - '0');
        if (v > 0x3fffffff)
            break;
    }
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", v);
    if (v <= 1 || v > 0x3fffffff || read_small(AT_FDCWD, path, cmd, sizeof(cmd)) <= 0)
        return 0;
    const char *base = strrchr(cmd, '/');
    base = base != NULL ? base + 1 : cmd;
    snprintf(path, sizeof(path), "/proc/%ld/cwd", v);
    if ((strcmp(base, "mariadbd") != 0 && strcmp(base, "mysqld") != 0) || stat(path, &cst) != 0 ||
        cst.st_dev != dst->st_dev || cst.st_ino != dst->st_ino) {
        wd_log("error", "pid %ld from '%s/mariadbd.pid' is not its server: not signaling it", v,
               data_dir);
        return 0;
    }
    return (pid_t)v;
}

/* MariaDB: a clean shutdown (SIGTERM), SIGKILL past the stop time. The
 * agent rejoins the node read-only when it runs again. */
static void fence_mariadbd(pid_t pid)
{
    if (kill(pid, SIGTERM) != 0 && errno != ESRCH) {
        wd_log("error", "cannot signal mariadbd pid %ld: %s", (long)pid, strerror(errno));
        return;
    }
    if (wait_gone(pid, RV_AGENT_WATCHDOG_STOP_MS)) {
        wd_log("info", "mariadbd pid %ld stopped (clean shutdown)", (long)pid);
        return;
    }
    wd_log("warn", "mariadbd pid %ld still up after %d ms: killing it", (long)pid,
           RV_AGENT_WATCHDOG_STOP_MS);
    kill(pid, SIGKILL);
    if (!wait_gone(pid, RV_AGENT_WATCHDOG_STOP_MS))
        wd_log("error", "mariadbd pid %ld still up after SIGKILL", (long)pid);
}

/* So that any restart comes back read-only: the agent decides later. */
static void write_standby_signal(int dfd, const struct stat *dst, const char *data_dir)
{
    int fd = openat(dfd, "standby.signal", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        wd_log("error", "cannot create '%s/standby.signal': %s", data_dir, strerror(errno));
        return;
    }
    if (fchown(fd, dst->st_uid, dst->st_gid) != 0)
        wd_log("warn", "cannot chown '%s/standby.signal': %s", data_dir, strerror(errno));
    if (fsync(fd) != 0)
        wd_log("warn", "cannot sync '%s/standby.signal': %s", data_dir, strerror(errno));
    close(fd);
}

/* Exited: no such process, or a zombie (the postmaster's parent is init,
 * which may reap it late). */
static bool gone(pid_t pid)
{
    char path[64], st[512];
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (read_small(AT_FDCWD, path, st, sizeof(st)) <= 0)
        return true;
    const char *close_paren = strrchr(st, ')');
    return close_paren != NULL && close_paren[1] == ' ' &&
           (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

static bool wait_gone(pid_t pid, int ms)
{
    int64_t end = child_now_ms() + ms;
    for (;;) {
        if (gone(pid))
            return true;
        if (child_now_ms() >= end)
            return false;
        child_sleep_ms(20);
    }
}

static void fence(const char *data_dir, const char *why)
{
    struct stat dst;
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    wd_log("error", "%s: fencing the server in '%s'", why, data_dir);
    if (dfd < 0 || fstat(dfd, &dst) != 0) {
        wd_log("error", "cannot open data dir '%s': %s", data_dir, strerror(errno));
        goto out;
    }
    /* Only a running server is marked: a crashed data directory with
     * standby.signal cannot go through pg_rewind's single-user recovery. */
    pid_t mdb = mariadbd_of(dfd, &dst, data_dir);
    if (mdb > 0) {
        fence_mariadbd(mdb);
        goto out;
    }
    pid_t pid = postmaster_of(dfd, &dst, data_dir);
    if (pid == 0)
        goto out;
    write_standby_signal(dfd, &dst, data_dir);
    if (kill(pid, SIGINT) != 0 && errno != ESRCH) {
        wd_log("error", "cannot signal postgres pid %ld: %s", (long)pid, strerror(errno));
        goto out;
    }
    if (wait_gone(pid, RV_AGENT_WATCHDOG_STOP_MS)) {
        wd_log("info", "postgres pid %ld stopped (fast shutdown)", (long)pid);
        goto out;
    }
    wd_log("warn", "postgres pid %ld still up after %d ms: immediate shutdown", (long)pid,
           RV_AGENT_WATCHDOG_STOP_MS);
    kill(pid, SIGQUIT);
    if (wait_gone(pid, RV_AGENT_WATCHDOG_STOP_MS))
        wd_log("info", "postgres pid %ld stopped (immediate shutdown)", (long)pid);
    else
        wd_log("error", "postgres pid %ld still up after SIGQUIT", (long)pid);
out:
    if (dfd >= 0)
        close(dfd);
}

static int child_main(int fd, const char *data_dir, int64_t deadline_ms)
{
    bool armed = false;
    int64_t due = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int timeout = -1;
        if (armed) {
            int64_t left = due - child_now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int r = poll(&p, 1, timeout);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            wd_log("error", "poll: %s", strerror(errno));
            if (armed)
                fence(data_dir, "the watchdog cannot read the heartbeat");
            return 1;
        }
        if (r == 0) {
            if (armed && child_now_ms() >= due) {
                fence(data_dir, "no heartbeat from the agent within the renew deadline");
                armed = false;
            }
            continue;
        }
        char buf[64];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            if (armed)
                fence(data_dir, "the agent died while primary");
            return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 'A') {
                armed = true;
                due = child_now_ms() + deadline_ms;
            } else if (buf[i] == 'D') {
                armed = false;
            }
        }
    }
}

/* --- the agent side --- */

int watchdog_start(struct watchdog *w, const char *data_dir, int64_t deadline_ms,
                   struct rv_error *err)
{
    int p[2];
    w->fd = -1;
    w->pid = 0;
    w->armed = false;
    w->broken = false;
    if (deadline_ms <= 0 || deadline_ms > RV_AGENT_TTL_MAX_MS)
        return rv_error_set(err, RV_EINVAL, false, "watchdog deadline %lld ms out of range",
                            (long long)deadline_ms);
    if (pipe2(p, O_CLOEXEC) != 0)
        return rv_error_set(err, RV_EIO, false, "cannot create the watchdog pipe: %s",
                            strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return rv_error_set(err, RV_EIO, false, "cannot fork the watchdog: %s", strerror(e));
    }
    if (pid == 0) {
        /* Keep stdin/out/err and the read end (moved to 3); close the rest,
         * among them the agent's lock file and the loop's descriptors. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_IGN; /* a terminal's ^C is for the agent */
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGCHLD, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close(p[1]);
        if (p[0] != 3) {
            if (dup2(p[0], 3) < 0)
                _exit(1);
            close(p[0]);
        } else if (fcntl(3, F_SETFD, 0) != 0) {
            _exit(1);
        }
        if (close_range(4, ~0U, 0) != 0)
            for (int fd = 4; fd < 65536; fd++)
                close(fd);
        _exit(child_main(3, data_dir, deadline_ms));
    }
    close(p[0]);
    if (fcntl(p[1], F_SETFL, O_NONBLOCK) != 0) {
        int e = errno;
        close(p[1]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rv_error_set(err, RV_EIO, false, "cannot set up the watchdog pipe: %s", strerror(e));
    }
    w->fd = p[1];
    w->pid = pid;
    log_info(COMP, "watchdog pid %ld guards '%s' (deadline %lld ms)", (long)pid, data_dir,
             (long long)deadline_ms);
    return 0;
}

static void send_byte(struct watchdog *w, char c)
{
    if (w->fd < 0)
        return;
    ssize_t n = write(w->fd, &c, 1);
    if (n == 1 || (n < 0 && errno == EAGAIN)) {
        /* EAGAIN: 64 KiB of unread heartbeats; the watchdog holds the
         * newest state it will read anyway. */
        return;
    }
    if (!w->broken)
        log_error(COMP, "the watchdog (pid %ld) is gone: %s; the primary is not guarded",
                  (long)w->pid, n < 0 ? strerror(errno) : "short write");
    w->broken = true;
}

void watchdog_arm(struct watchdog *w)
{
    w->armed = true;
    send_byte(w, 'A');
}

void watchdog_disarm(struct watchdog *w)
{
    if (w->armed)
        log_info(COMP, "watchdog disarmed");
    w->armed = false;
    send_byte(w, 'D');
}

void watchdog_release(struct watchdog *w)
{
    if (w->fd >= 0) {
        send_byte(w, 'D');
        close(w->fd);
        w->fd = -1;
    }
    if (w->pid > 0) {
        int64_t end = child_now_ms() + RV_AGENT_WATCHDOG_REAP_MS;
        while (waitpid(w->pid, NULL, WNOHANG) == 0 && child_now_ms() < end)
            child_sleep_ms(10);
        w->pid = 0;
    }
}
