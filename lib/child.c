/* child.c - child-process framing (see child.h). */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int64_t child_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void child_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int child_exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int child_keep_tail(struct buf *tail, const char *data, size_t n, size_t max)
{
    if (n > max) {
        data += n - max;
        n = max;
    }
    if (tail->len + n > max) {
        size_t drop = tail->len + n - max;
        memmove(tail->data, tail->data + drop, tail->len - drop);
        tail->len -= drop;
        tail->data[tail->len] = '\0';
    }
    return buf_append(tail, data, n);
}

void child_tail_line(char *dst, size_t cap, const struct buf *out)
{
    dst[0] = '\0';
    if (!out->data || out->len == 0)
        return;
    size_t len = out->len;
    while (len > 0 && (out->data[len - 1] == '\n' || out->data[len - 1] == ' '))
        len--;
    size_t start = len > cap - 1 ? len - (cap - 1) : 0;
    size_t j = 0;
    for (size_t i = start; i < len && j + 1 < cap; i++) {
        char c = out->data[i];
        dst[j++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    }
    dst[j] = '\0';
}

static bool has_prefix(const char *s, const char *const *prefixes)
{
    for (size_t i = 0; prefixes && prefixes[i]; i++)
        if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

char **child_env(const char *const *drop, const char *const *add)
{
    size_t n = 0;
    for (char **p = environ; *p; p++)
        n++;
    for (size_t i = 0; add && add[i]; i++)
        n++;
    char **envp = calloc(n + 1, sizeof *envp);
    if (!envp)
        return NULL;
    n = 0;
    for (char **p = environ; *p; p++)
        if (!has_prefix(*p, drop))
            envp[n++] = *p;
    for (size_t i = 0; add && add[i]; i++)
        envp[n++] = (char *)add[i];
    envp[n] = NULL;
    return envp;
}

/* --- spawning --- */

/* What the child needs after fork, prepared before it: no allocation and
 * no formatting happen in the child. */
struct exec_plan {
    const struct child_spec *s;
    int fd[3];     /* the child's 0, 1, 2 */
    int parent[3]; /* our ends of CHILD_IO_PIPE */
    bool piped[3];
    int devnull;
    char msg_user[160];
    char msg_exec[RV_ERROR_MSG_MAX];
};

static void say(const char *msg)
{
    ssize_t w = write(2, msg, strlen(msg));
    (void)w;
}

/* Only async-signal-safe calls from here to exec: the caller may be
 * multi-threaded. */
static void exec_child(const struct exec_plan *p)
{
    const struct child_spec *s = p->s;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    /* Through copies above 2 first: a descriptor that is itself 0, 1 or 2
     * (stdio closed in the caller) is neither clobbered nor left
     * close-on-exec. The copies are close-on-exec. */
    int tmp[3];
    for (int i = 0; i < 3; i++)
        if ((tmp[i] = fcntl(p->fd[i], F_DUPFD_CLOEXEC, 3)) < 0)
            _exit(126);
    for (int i = 0; i < 3; i++)
        if (dup2(tmp[i], i) < 0)
            _exit(126);
    if (s->close_fds)
        close_range(3, ~0U, 0);
    if (s->run_as && (setgroups(1, &s->gid) != 0 || setgid(s->gid) != 0 || setuid(s->uid) != 0)) {
        say(p->msg_user);
        _exit(126);
    }
    if ((s->cwd == NULL || chdir(s->cwd) != 0) && chdir("/") != 0)
        _exit(126);
    execve(s->argv[0], (char *const *)s->argv, s->envp);
    say(p->msg_exec);
    _exit(127);
}

/* The child's end of descriptor i (0, 1, 2); a pipe's other end goes to
 * *parent. */
static int child_end(int *end, int *parent, const struct child_spec *s, int i, int capture_fd,
                     int devnull)
{
    enum child_io io = i == 0 ? s->in : i == 1 ? s->out : s->err;
    int fd = i == 0 ? s->in_fd : i == 1 ? s->out_fd : s->err_fd;
    int p[2];
    if (io == CHILD_IO_DEFAULT)
        io = i == 0 ? CHILD_IO_NULL : CHILD_IO_CAPTURE;
    switch (io) {
    case CHILD_IO_NULL:
        *end = devnull;
        return 0;
    case CHILD_IO_CAPTURE:
        *end = capture_fd;
        return capture_fd >= 0 ? 0 : RV_EINVAL;
    case CHILD_IO_FD:
        *end = fd;
        return fd >= 0 ? 0 : RV_EINVAL;
    case CHILD_IO_PIPE:
        if (pipe2(p, O_CLOEXEC) != 0)
            return RV_EIO;
        *end = i == 0 ? p[0] : p[1];
        *parent = i == 0 ? p[1] : p[0];
        return 0;
    default:
        return RV_EINVAL;
    }
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Open what the child's descriptors need. On failure err is set and
 * plan_close still has to be called. */
static int plan_open(struct exec_plan *p, const struct child_spec *s, int capture_fd,
                     struct rv_error *err)
{
    const char *label = s->label ? s->label : "child";
    int rc = 0;
    snprintf(p->msg_user, sizeof p->msg_user, "%s: cannot switch to uid %u gid %u\n", label,
             (unsigned)s->uid, (unsigned)s->gid);
    if (snprintf(p->msg_exec, sizeof p->msg_exec, "%s: cannot execute '%s'\n", label, s->argv[0]) >=
        (int)sizeof p->msg_exec)
        snprintf(p->msg_exec, sizeof p->msg_exec, "%s: cannot execute the program\n", label);
    p->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int i = 0; i < 3 && rc == 0 && p->devnull >= 0; i++) {
        rc = child_end(&p->fd[i], &p->parent[i], s, i, capture_fd, p->devnull);
        p->piped[i] = p->parent[i] >= 0;
        if (rc == RV_EINVAL)
            return rv_error_set(err, RV_EINVAL, false, "%s: no descriptor for the %s of '%s'",
                                label,
                                i == 0   ? "stdin"
                                : i == 1 ? "stdout"
                                         : "stderr",
                                s->argv[0]);
    }
    if (p->devnull < 0 || rc != 0)
        return rv_error_set(err, RV_EIO, true, "%s: cannot set up '%s': %s", label, s->argv[0],
                            strerror(errno));
    return 0;
}

/* Close the child's ends of our pipes, the parent's ends still here, and
 * /dev/null; the caller's descriptors stay open. */
static void plan_close(struct exec_plan *p)
{
    for (int i = 0; i < 3; i++) {
        if (p->piped[i])
            close_fd(&p->fd[i]);
        close_fd(&p->parent[i]);
    }
    close_fd(&p->devnull);
}

#define PLAN_INIT(spec)                                                                            \
    {                                                                                              \
        .s = (spec), .fd = {-1, -1, -1}, .parent = {-1, -1, -1}, .devnull = -1                     \
    }

int child_spawn(struct child *c, const struct child_spec *s, int capture_fd, struct rv_error *err)
{
    struct exec_plan plan = PLAN_INIT(s);
    *c = (struct child)CHILD_INIT;
    int rc = plan_open(&plan, s, capture_fd, err);
    if (rc != 0)
        goto out;
    c->pid = fork();
    if (c->pid < 0) {
        rc = rv_error_set(err, RV_EIO, true, "%s: cannot fork for '%s': %s",
                          s->label ? s->label : "child", s->argv[0], strerror(errno));
        c->pid = -1;
        goto out;
    }
    if (c->pid == 0)
        exec_child(&plan);
    /* Also here, so a kill of the group cannot come before the child's own
     * setpgid (EACCES once it has exec'd is harmless). */
    setpgid(c->pid, c->pid);
    c->in = plan.parent[0];
    c->out = plan.parent[1];
    c->err = plan.parent[2];
    plan.parent[0] = plan.parent[1] = plan.parent[2] = -1;
out:
    plan_close(&plan);
    return rc;
}

int child_spawn_detached(pid_t *pid, const struct child_spec *s, struct rv_error *err)
{
    const char *label = s->label ? s->label : "child";
    struct exec_plan plan = PLAN_INIT(s);
    int pfd[2] = {-1, -1};
    int rc = 0, status = 0;
    pid_t mid, gpid = 0;
    ssize_t r;
    *pid = 0;
    if (s->in == CHILD_IO_PIPE || s->out == CHILD_IO_PIPE || s->err == CHILD_IO_PIPE) {
        rc = rv_error_set(err, RV_EINVAL, false, "%s: a detached '%s' has no pipes", label,
                          s->argv[0]);
        goto out;
    }
    if ((rc = plan_open(&plan, s, -1, err)) != 0)
        goto out;
    if (pipe2(pfd, O_CLOEXEC) != 0 || (mid = fork()) < 0) {
        rc = rv_error_set(err, RV_EIO, true, "%s: cannot fork for '%s': %s", label, s->argv[0],
                          strerror(errno));
        goto out;
    }
    if (mid == 0) {
        if (setsid() < 0)
            _exit(126);
        pid_t g = fork();
        if (g < 0)
            _exit(126);
        if (g > 0) {
            ssize_t w = write(pfd[1], &g, sizeof g);
            _exit(w == (ssize_t)sizeof g ? 0 : 126);
        }
        exec_child(&plan);
    }
    close_fd(&pfd[1]);
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {
    }
    do {
        r = read(pfd[0], &gpid, sizeof gpid);
    } while (r < 0 && errno == EINTR);
    if (child_exit_code(status) != 0 || r != (ssize_t)sizeof gpid || gpid <= 0) {
        rc = rv_error_set(err, RV_ECHILD, true, "%s: cannot start '%s'", label, s->argv[0]);
        goto out;
    }
    *pid = gpid;
out:
    close_fd(&pfd[0]);
    close_fd(&pfd[1]);
    plan_close(&plan);
    return rc;
}

static void kill_reap(struct child *c, int *status)
{
    kill(-c->pid, SIGKILL);
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, status, 0) < 0 && errno == EINTR) {
    }
    c->pid = -1;
}

int child_reap(int *status, struct child *c, int64_t deadline_ms, const atomic_bool *cancel)
{
    *status = 0;
    if (c->pid <= 0)
        return 0;
    if (deadline_ms == INT64_MAX && cancel == NULL) {
        while (waitpid(c->pid, status, 0) < 0 && errno == EINTR) {
        }
        c->pid = -1;
        return 0;
    }
    for (;;) {
        pid_t w = waitpid(c->pid, status, WNOHANG);
        if (w == c->pid) {
            c->pid = -1;
            return 0;
        }
        if (w < 0 && errno != EINTR) {
            c->pid = -1;
            return RV_EIO;
        }
        int why = 0;
        if (cancel && atomic_load(cancel))
            why = RV_ECANCELED;
        else if (child_now_ms() >= deadline_ms)
            why = RV_ETIMEOUT;
        if (why != 0) {
            kill_reap(c, status);
            return why;
        }
        child_sleep_ms(RV_CHILD_REAP_SLEEP_MS);
    }
}

void child_close_pipes(struct child *c)
{
    close_fd(&c->in);
    close_fd(&c->out);
    close_fd(&c->err);
}

void child_release(struct child *c)
{
    child_close_pipes(c);
    if (c->pid > 0) {
        int status;
        kill_reap(c, &status);
    }
}

/* --- running to the end --- */

/* Read fd until EOF (every writer gone), the deadline or *cancel. Returns
 * 0, RV_ETIMEOUT, RV_ECANCELED, RV_EIO or RV_ENOMEM. */
static int collect(int fd, struct buf *out, size_t max, int64_t deadline, const atomic_bool *cancel)
{
    char chunk[RV_CHILD_CHUNK];
    for (;;) {
        if (cancel && atomic_load(cancel))
            return RV_ECANCELED;
        int64_t left = deadline - child_now_ms();
        if (left <= 0)
            return RV_ETIMEOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)(left > RV_CHILD_POLL_MS ? RV_CHILD_POLL_MS : left));
        if (pr < 0 && errno != EINTR)
            return RV_EIO;
        if (pr <= 0)
            continue;
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return 0;
        if (child_keep_tail(out, chunk, (size_t)r, max) != 0)
            return RV_ENOMEM;
    }
}

void child_result_release(struct child_result *r)
{
    buf_release(&r->out);
}

/* Reap every started child; after a failure or the deadline they are
 * killed. Returns 0, RV_ETIMEOUT / RV_ECANCELED (in why), or RV_EIO. */
static int reap_all(struct child_result *r, struct child *c, size_t n, int64_t deadline,
                    const struct child_opts *o, int why)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        pid_t pid = c[i].pid;
        int st = 0;
        if (why != 0) {
            kill_reap(&c[i], &st);
        } else {
            int w = child_reap(&st, &c[i], deadline, o->cancel);
            if (w == RV_EIO)
                rc = RV_EIO;
            else
                why = w;
        }
        if (why == 0 && o->kill_group_after)
            kill(-pid, SIGKILL);
        r->status[i] = st;
        r->exit_code[i] = why != 0 ? -1 : child_exit_code(st);
    }
    /* A later child's timeout kills the earlier ones too. */
    r->why = why == RV_ETIMEOUT || why == RV_ECANCELED ? why : 0;
    return rc;
}

int child_run(struct child_result *r, const struct child_spec *s, size_t n,
              const struct child_opts *o, struct rv_error *err)
{
    struct child c[RV_CHILD_PIPELINE_MAX];
    const char *label = n > 0 && s[0].label ? s[0].label : "child";
    size_t max = o->output_max ? o->output_max : RV_CHILD_OUTPUT_MAX;
    int pfd[2] = {-1, -1};
    size_t started = 0;
    int rc = 0, why = 0;

    memset(r, 0, sizeof *r);
    buf_init(&r->out);
    for (size_t i = 0; i < RV_CHILD_PIPELINE_MAX; i++)
        r->exit_code[i] = -1;
    if (n == 0 || n > RV_CHILD_PIPELINE_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "%s: a pipeline has 1 to %d programs", label,
                            RV_CHILD_PIPELINE_MAX);
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return rv_error_set(err, RV_EIO, true, "%s: cannot set up '%s': %s", label, s[0].argv[0],
                            strerror(errno));
    for (; started < n && rc == 0; started++)
        if ((rc = child_spawn(&c[started], &s[started], pfd[1], err)) != 0)
            break;
    close_fd(&pfd[1]);
    /* Handed to the children: the reader of a pipe between them must see
     * EOF once its writer exits. */
    for (size_t i = 0; i < o->n_close; i++)
        close_fd(&o->close_after_spawn[i]);
    int64_t deadline = child_now_ms() + o->timeout_ms;
    if (rc == 0)
        why = collect(pfd[0], &r->out, max, deadline, o->cancel);
    if (why == RV_EIO)
        rc = rv_error_set(err, RV_EIO, true, "%s: cannot read the output of '%s': %s", label,
                          s[0].argv[0], strerror(errno));
    else if (why == RV_ENOMEM)
        rc = rv_error_set(err, RV_ENOMEM, false, "%s: out of memory", label);
    if (reap_all(r, c, started, deadline, o, rc != 0 ? RV_EIO : why) != 0 && rc == 0)
        rc = rv_error_set(err, RV_EIO, false, "%s: waitpid: %s", label, strerror(errno));
    close_fd(&pfd[0]);
    return rc;
}
