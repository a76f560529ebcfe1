/* provider.c - the provider protocol client (see provider.h, PROTOCOL.md).
 *
 * Design. One mutex (p->mu) and one condition variable guard the state:
 * the running child ("generation"), the calls in flight and the restart
 * history. A caller registers its call, writes its request frame (frames
 * are serialised by p->wmu) and waits on the condition variable. A reader
 * thread per generation parses reply frames and hands each to the call with
 * its id. Anything that ends a generation (EOF, a protocol error, a missed
 * deadline) "detaches" it under p->mu: the generation is marked dead, its
 * wake pipe is written so that its threads and a blocked writer stop, its
 * process group gets SIGTERM, and every call still waiting on it fails
 * retryably. Detached generations go to a graveyard; the next caller (or
 * provider_stop) reaps them outside the mutex: SIGKILL after a grace,
 * waitpid, join the threads, close the pipes. The next call starts a new
 * child, after a backoff and within RV_PROVIDER_RESTARTS_PER_MIN a minute.
 */
#include "provider.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "limits.h"
#include "log.h"

extern char **environ;

#define LOG_COMPONENT "provider"
/* Bytes read from a pipe at once. */
#define READ_CHUNK (64 * 1024)
/* How long the reader waits for an exited child's status, for the message. */
#define EXIT_STATUS_WAIT_MS 200

/* Capabilities this reeve understands; a provider agrees to a subset. */
static const char *const offered_caps[] = {"resize", "volumes", "upgrade"};

/* Methods that need a capability. */
static const struct {
    const char *method;
    const char *capability;
} method_caps[] = {
    {"resize_instance", "resize"}, {"create_volume", "volumes"}, {"delete_volume", "volumes"},
    {"list_volumes", "volumes"},   {"attach_volume", "volumes"}, {"detach_volume", "volumes"},
    {"upgrade_instance", "upgrade"},
};

/* Error codes of the protocol and the RV_E* code each maps to. */
static const struct {
    const char *name;
    int code;
} error_codes[] = {
    {"not_found", RV_ENOTFOUND}, {"invalid", RV_EINVAL},       {"conflict", RV_ECONFLICT},
    {"quota", RV_ELIMIT},        {"unavailable", RV_EUNAVAIL}, {"timeout", RV_ETIMEOUT},
    {"internal", RV_EINTERNAL},
};

struct gen {
    unsigned no;
    pid_t pid;
    int in_fd;       /* the child's stdin (our end, non-blocking) */
    int out_fd;      /* the child's stdout */
    int err_fd;      /* the child's stderr */
    int wake[2];     /* written once the generation is detached */
    int err_wake[2]; /* written once the child is reaped */
    pthread_t reader, errlog;
    bool reader_started, errlog_started;
    bool dead;       /* detached or being stopped: no new calls */
    bool woken;      /* wake[1] written */
    bool reaped;     /* waitpid done */
    unsigned users;  /* callers writing to in_fd */
    struct buf rbuf; /* stdout bytes not yet consumed */
    struct provider *p;
    struct gen *next; /* graveyard list */
};

struct call {
    uint64_t id;
    unsigned gen;
    bool done;
    int code;
    bool retryable;
    char msg[RV_ERROR_MSG_MAX];
    json_t *result;
    struct call *next;
};

struct provider {
    char name[RV_PROVIDER_NAME_MAX + 1];
    char **argv;
    char **env;
    char *workdir;
    int64_t hello_ms, grace_ms, kill_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t wmu; /* serialises frame writes */
    struct gen *cur;     /* the running child, or NULL */
    bool starting;
    struct gen *graveyard;
    struct call *calls;
    size_t ncalls;
    uint64_t next_id;
    unsigned gen_no;
    unsigned starts;
    int64_t start_times[RV_PROVIDER_RESTARTS_PER_MIN]; /* ring of start times */
    json_t *describe;                                  /* from the first hello */
    json_t *caps; /* agreed capabilities, from the first hello */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Wait on p->cv until the monotonic time until_ms; p->mu is held. */
static void cond_wait_until(struct provider *p, int64_t until_ms)
{
    struct timespec ts = {(time_t)(until_ms / 1000), (long)(until_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

/* Copy text from a child into dst for a message: control characters become
 * '?', and it is cut to fit. */
static void sanitize(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[n++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    dst[n] = '\0';
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* pipe2(O_CLOEXEC) whose ends are never 0, 1 or 2, so that dup2 onto the
 * child's standard descriptors cannot clobber another end. */
static int pipe_high(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (fds[i] > 2)
            continue;
        int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (hi < 0) {
            close(fds[0]);
            close(fds[1]);
            return -1;
        }
        close(fds[i]);
        fds[i] = hi;
    }
    return 0;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Find argv0 in PATH (unless it names a path) so that the child only calls
 * execve and a missing executable gets a clear error before any fork. */
static int resolve_exe(char **out, const char *argv0)
{
    struct stat st;
    if (strchr(argv0, '/') != NULL) {
        if (stat(argv0, &st) != 0 || !S_ISREG(st.st_mode) || access(argv0, X_OK) != 0)
            return RV_ENOTFOUND;
        *out = strdup(argv0);
        return *out != NULL ? 0 : RV_ENOMEM;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    struct buf b = BUF_INIT;
    int rc = RV_ENOTFOUND;
    while (*path != '\0') {
        const char *end = strchr(path, ':');
        size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
        buf_clear(&b);
        if (buf_append(&b, path, len) != 0 || buf_printf(&b, "/%s", argv0) != 0) {
            rc = RV_ENOMEM;
            break;
        }
        if (len > 0 && stat(b.data, &st) == 0 && S_ISREG(st.st_mode) && access(b.data, X_OK) == 0) {
            *out = buf_detach(&b);
            rc = 0;
            break;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    buf_release(&b);
    return rc;
}

/* --- child processes ----------------------------------------------------- */

/* In the child between fork and exec: async-signal-safe calls only. */
static void child_exec(const char *exe, struct provider *p, int in_fd, int out_fd, int err_fd,
                       int report_fd)
{
    int e;
    setpgid(0, 0);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        goto fail;
    /* report_fd is above 2 and already close-on-exec; everything else from
     * reeve (sockets, databases, other providers' pipes) must not leak. */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < 4096; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (p->workdir != NULL && chdir(p->workdir) != 0)
        goto fail;
    execve(exe, p->argv, p->env != NULL ? p->env : environ);
fail:
    e = errno;
    (void)!write(report_fd, &e, sizeof(e));
    _exit(127);
}

static void gen_free(struct gen *g)
{
    if (g == NULL)
        return;
    close_fd(&g->in_fd);
    close_fd(&g->out_fd);
    close_fd(&g->err_fd);
    close_fd(&g->wake[0]);
    close_fd(&g->wake[1]);
    close_fd(&g->err_wake[0]);
    close_fd(&g->err_wake[1]);
    buf_release(&g->rbuf);
    free(g);
}

static void gen_wake(struct gen *g)
{
    if (!g->woken) {
        g->woken = true;
        (void)!write(g->wake[1], "x", 1);
    }
}

/* Wait until the child has exited or until_ms passes. The child is not
 * reaped: as a zombie it keeps its pid and process group id reserved, so a
 * later kill of the group cannot hit an unrelated process. */
static bool gen_wait_exit(struct gen *g, int64_t until_ms)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int r = waitid(P_PID, (id_t)g->pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (r == 0 && si.si_pid == g->pid)
            return true;
        if (r < 0 && errno == ECHILD) {
            /* Someone else reaped it (a careless SIGCHLD handler). */
            g->reaped = true;
            return true;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (now_ms() >= until_ms)
            return false;
        sleep_ms(10);
    }
}

/* End a generation for good: stop its child (politely when graceful: close
 * stdin and wait), join its threads, free it. Called without p->mu, once
 * no caller uses it. */
static void gen_destroy(struct gen *g, bool graceful)
{
    struct provider *p = g->p;
    gen_wake(g);
    if (g->pid > 0) {
        bool exited = false;
        if (graceful) {
            close_fd(&g->in_fd);
            exited = gen_wait_exit(g, now_ms() + RV_PROVIDER_STOP_WAIT_MS);
        }
        if (!exited) {
            kill(-g->pid, SIGTERM);
            kill(g->pid, SIGTERM);
            if (!gen_wait_exit(g, now_ms() + p->kill_ms))
                log_warn(LOG_COMPONENT, "%s: did not exit %lld ms after SIGTERM; sending SIGKILL",
                         p->name, (long long)p->kill_ms);
        }
        if (!g->reaped) {
            /* Also whatever the provider left behind in its process group,
             * which would hold the pipes open. */
            kill(-g->pid, SIGKILL);
            kill(g->pid, SIGKILL);
            while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            g->reaped = true;
        }
    }
    if (g->reader_started)
        pthread_join(g->reader, NULL);
    (void)!write(g->err_wake[1], "x", 1);
    if (g->errlog_started)
        pthread_join(g->errlog, NULL);
    gen_free(g);
}

/* Fail every waiting call of generation no; p->mu is held. */
static void fail_calls_locked(struct provider *p, unsigned no, int code, const char *msg)
{
    for (struct call *c = p->calls; c != NULL; c = c->next) {
        if (c->gen != no || c->done)
            continue;
        c->done = true;
        c->code = code;
        c->retryable = true;
        snprintf(c->msg, sizeof(c->msg), "%s", msg);
    }
}

/* Take a running generation out of service; p->mu is held. */
static void gen_detach_locked(struct provider *p, struct gen *g, int code, const char *msg)
{
    if (g->dead)
        return;
    g->dead = true;
    if (p->cur == g)
        p->cur = NULL;
    gen_wake(g);
    kill(-g->pid, SIGTERM);
    kill(g->pid, SIGTERM);
    fail_calls_locked(p, g->no, code, msg);
    log_warn(LOG_COMPONENT, "%s", msg);
    g->next = p->graveyard;
    p->graveyard = g;
    pthread_cond_broadcast(&p->cv);
}

/* Destroy detached generations nobody uses any more. */
static void reap_graveyard(struct provider *p)
{
    struct gen *ready = NULL;
    pthread_mutex_lock(&p->mu);
    struct gen **pp = &p->graveyard;
    while (*pp != NULL) {
        struct gen *g = *pp;
        if (g->users == 0) {
            *pp = g->next;
            g->next = ready;
            ready = g;
        } else {
            pp = &g->next;
        }
    }
    pthread_mutex_unlock(&p->mu);
    while (ready != NULL) {
        struct gen *g = ready;
        ready = g->next;
        gen_destroy(g, false);
    }
}

/* Write a whole frame to the child; p->wmu is held. Returns 0, RV_ETIMEOUT,
 * RV_ECANCELED (the generation was detached) or RV_EIO (the child closed
 * its stdin). SIGPIPE is blocked in this thread for the write, and one it
 * raised is consumed, so a dead child never kills reeve. */
static int gen_write(struct gen *g, const char *data, size_t len, int64_t until_ms)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    int rc = 0;
    while (len > 0) {
        ssize_t n = write(g->in_fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN) {
            if (errno == EPIPE && !was_pending) {
                struct timespec zero = {0, 0};
                sigtimedwait(&pipe_set, NULL, &zero);
            }
            rc = RV_EIO;
            goto out;
        }
        int64_t left = until_ms - now_ms();
        if (left <= 0) {
            rc = RV_ETIMEOUT;
            goto out;
        }
        struct pollfd pfd[2] = {{g->in_fd, POLLOUT, 0}, {g->wake[0], POLLIN, 0}};
        if (poll(pfd, 2, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR) {
            rc = RV_EIO;
            goto out;
        }
        if (pfd[1].revents != 0) {
            rc = RV_ECANCELED;
            goto out;
        }
    }
out:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Next complete line of the child's stdout in g->rbuf: *line_len is its
 * length without the newline. until_ms < 0 waits without a time limit.
 * Returns 0, RV_EIO (EOF or read error), RV_ELIMIT (a line over the frame
 * cap), RV_ETIMEOUT or RV_ECANCELED (woken). */
static int gen_next_line(size_t *line_len, struct gen *g, int64_t until_ms)
{
    size_t scanned = 0;
    for (;;) {
        if (g->rbuf.len > scanned) {
            char *nl = memchr(g->rbuf.data + scanned, '\n', g->rbuf.len - scanned);
            if (nl != NULL) {
                *line_len = (size_t)(nl - g->rbuf.data);
                return *line_len > RV_PROVIDER_FRAME_MAX ? RV_ELIMIT : 0;
            }
            scanned = g->rbuf.len;
        }
        if (g->rbuf.len > RV_PROVIDER_FRAME_MAX)
            return RV_ELIMIT;
        int timeout = -1;
        if (until_ms >= 0) {
            int64_t left = until_ms - now_ms();
            if (left <= 0)
                return RV_ETIMEOUT;
            timeout = (int)(left > 1000 ? 1000 : left);
        }
        struct pollfd pfd[2] = {{g->out_fd, POLLIN, 0}, {g->wake[0], POLLIN, 0}};
        int pr = poll(pfd, 2, timeout);
        if (pr < 0 && errno != EINTR)
            return RV_EIO;
        if (pfd[1].revents != 0)
            return RV_ECANCELED;
        if (pr <= 0 || pfd[0].revents == 0)
            continue;
        if (buf_reserve(&g->rbuf, READ_CHUNK) != 0)
            return RV_ENOMEM;
        ssize_t n = read(g->out_fd, g->rbuf.data + g->rbuf.len, READ_CHUNK);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return RV_EIO;
        g->rbuf.len += (size_t)n;
        g->rbuf.data[g->rbuf.len] = '\0';
    }
}

static void gen_consume(struct gen *g, size_t n)
{
    memmove(g->rbuf.data, g->rbuf.data + n, g->rbuf.len - n);
    g->rbuf.len -= n;
    g->rbuf.data[g->rbuf.len] = '\0';
}

/* How the child ended, for a message; it may not have exited yet. */
static void gen_exit_desc(char *out, size_t cap, struct gen *g)
{
    int64_t until = now_ms() + EXIT_STATUS_WAIT_MS;
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)g->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == g->pid)
            break;
        if (now_ms() >= until) {
            snprintf(out, cap, "closed its stdout");
            return;
        }
        sleep_ms(5);
    }
    if (si.si_code == CLD_EXITED)
        snprintf(out, cap, "exited with status %d", si.si_status);
    else
        snprintf(out, cap, "was killed by signal %d (%s)", si.si_status, strsignal(si.si_status));
}

/* --- frames -------------------------------------------------------------- */

/* Parse one line as a JSON object; *msg says what is wrong otherwise. */
static json_t *frame_parse(const char *line, size_t len, char *msg, size_t cap)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        char text[128];
        sanitize(text, sizeof(text), jerr.text, strlen(jerr.text));
        snprintf(msg, cap, "malformed JSON at column %d: %s", jerr.column, text);
        return NULL;
    }
    if (!json_is_object(j)) {
        snprintf(msg, cap, "a frame must be a JSON object");
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool is_string_array(const json_t *a, size_t max)
{
    if (!json_is_array(a) || json_array_size(a) > max)
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            return false;
    }
    return true;
}

static bool cap_offered(const char *name)
{
    for (size_t i = 0; i < sizeof(offered_caps) / sizeof(offered_caps[0]); i++) {
        if (strcmp(offered_caps[i], name) == 0)
            return true;
    }
    return false;
}

/* What is wrong with a describe object ("describe.name must be ..."), or
 * NULL. */
static const char *describe_check(const json_t *d)
{
    const char *k;
    const json_t *v;
    if (!json_is_object(d))
        return "describe must be an object";
    if (!json_is_string(json_object_get(d, "name")) ||
        json_string_length(json_object_get(d, "name")) == 0)
        return "describe.name must be a non-empty string";
    if (!json_is_string(json_object_get(d, "version")))
        return "describe.version must be a string";
    if (!is_string_array(json_object_get(d, "regions"), SIZE_MAX))
        return "describe.regions must be an array of strings";
    if (!json_is_object(json_object_get(d, "engines")))
        return "describe.engines must be an object";
    if (json_object_get(d, "instance_types") != NULL &&
        !json_is_array(json_object_get(d, "instance_types")))
        return "describe.instance_types must be an array";
    json_object_foreach(json_object_get(d, "engines"), k, v)
    {
        if (!is_string_array(v, SIZE_MAX))
            return "describe.engines.<engine> must be an array of version strings";
    }
    return NULL;
}

/* --- result shapes ------------------------------------------------------- */

static bool int_in(const json_t *v, json_int_t lo, json_int_t hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static bool str_nonempty(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

static bool labels_ok(const json_t *v)
{
    const char *k;
    const json_t *x;
    if (!json_is_object(v))
        return false;
    json_object_foreach((json_t *)v, k, x)
    {
        (void)k;
        if (!json_is_string(x))
            return false;
    }
    return true;
}

static bool word_in(const json_t *v, const char *const *words, size_t n)
{
    for (size_t i = 0; json_is_string(v) && i < n; i++) {
        if (strcmp(json_string_value(v), words[i]) == 0)
            return true;
    }
    return false;
}

/* What is wrong with an instance object (".ports.db must be ..."), or NULL. */
static const char *instance_check(const json_t *in)
{
    static const char *const states[] = {"provisioning", "running", "stopped", "failed"};
    const json_t *ports = json_object_get(in, "ports");
    const json_t *res = json_object_get(in, "resources");
    if (!json_is_object(in))
        return " must be an object";
    if (!str_nonempty(json_object_get(in, "id")))
        return ".id must be a non-empty string";
    if (!str_nonempty(json_object_get(in, "name")))
        return ".name must be a non-empty string";
    if (!labels_ok(json_object_get(in, "labels")))
        return ".labels must be an object of strings";
    if (!str_nonempty(json_object_get(in, "address")))
        return ".address must be a non-empty string";
    /* ports.agent is only for agents that listen; reeve-agent is a client. */
    json_t *agent_port = json_is_object(ports) ? json_object_get(ports, "agent") : NULL;
    if (!json_is_object(ports) || !int_in(json_object_get(ports, "db"), 1, 65535) ||
        (agent_port != NULL && !int_in(agent_port, 1, 65535)))
        return ".ports must be {db, agent?} with port numbers 1 to 65535";
    if (!word_in(json_object_get(in, "state"), states, sizeof(states) / sizeof(states[0])))
        return ".state must be provisioning, running, stopped or failed";
    if (!str_nonempty(json_object_get(in, "engine")))
        return ".engine must be a non-empty string";
    if (!str_nonempty(json_object_get(in, "version")))
        return ".version must be a non-empty string";
    if (!json_is_object(res) || !int_in(json_object_get(res, "cpu"), 1, 4096) ||
        !int_in(json_object_get(res, "memoryMiB"), 1, INT64_MAX) ||
        !int_in(json_object_get(res, "storageGiB"), 1, INT64_MAX))
        return ".resources must be {cpu, memoryMiB, storageGiB} with positive integers";
    return NULL;
}

static const char *volume_check(const json_t *v)
{
    static const char *const states[] = {"creating", "available", "attached", "failed"};
    const json_t *at = json_object_get(v, "attachedTo");
    if (!json_is_object(v))
        return " must be an object";
    if (!str_nonempty(json_object_get(v, "id")))
        return ".id must be a non-empty string";
    if (!str_nonempty(json_object_get(v, "name")))
        return ".name must be a non-empty string";
    if (!labels_ok(json_object_get(v, "labels")))
        return ".labels must be an object of strings";
    if (!int_in(json_object_get(v, "sizeGiB"), 1, INT64_MAX))
        return ".sizeGiB must be a positive integer";
    if (!json_is_string(json_object_get(v, "region")))
        return ".region must be a string";
    if (!word_in(json_object_get(v, "state"), states, sizeof(states) / sizeof(states[0])))
        return ".state must be creating, available, attached or failed";
    if (!json_is_string(at) && !json_is_null(at))
        return ".attachedTo must be an instance id or null";
    return NULL;
}

/* Check the result of a method reeve knows; false with why set when its
 * shape is wrong. Results of other methods are only known to be objects. */
static bool result_check(char *why, size_t cap, const char *method, const json_t *r)
{
    const char *key = NULL, *bad = NULL;
    bool list = false, volumes = false;
    if (strcmp(method, "describe") == 0) {
        bad = describe_check(r);
        if (bad != NULL)
            snprintf(why, cap, "%s result: %s", method, bad);
        return bad == NULL;
    }
    if (strcmp(method, "list_instances") == 0) {
        key = "instances";
        list = true;
    } else if (strcmp(method, "create_instance") == 0 || strcmp(method, "resize_instance") == 0 ||
               strcmp(method, "upgrade_instance") == 0) {
        key = "instance";
    } else if (strcmp(method, "list_volumes") == 0) {
        key = "volumes";
        list = volumes = true;
    } else if (strcmp(method, "create_volume") == 0 || strcmp(method, "attach_volume") == 0 ||
               strcmp(method, "detach_volume") == 0) {
        key = "volume";
        volumes = true;
    } else {
        return true;
    }
    const json_t *v = json_object_get(r, key);
    if (!list) {
        bad = volumes ? volume_check(v) : instance_check(v);
        if (bad != NULL)
            snprintf(why, cap, "%s result: %s%s", method, key, bad);
        return bad == NULL;
    }
    if (!json_is_array(v)) {
        snprintf(why, cap, "%s result: %s must be an array", method, key);
        return false;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        bad = volumes ? volume_check(item) : instance_check(item);
        if (bad != NULL) {
            snprintf(why, cap, "%s result: %s[%zu]%s", method, key, i, bad);
            return false;
        }
    }
    return true;
}

/* Check the provider's hello; messages say what to fix in the provider. */
static int hello_check(struct provider *p, json_t *h, struct rv_error *err)
{
    const json_t *type = json_object_get(h, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "hello") != 0)
        return rv_error_set(err, RV_EPROTO, true,
                            "provider '%s' did not answer the handshake with a hello frame",
                            p->name);
    const json_t *ver = json_object_get(h, "protocol_version");
    if (!json_is_integer(ver))
        return rv_error_set(err, RV_EPROTO, false,
                            "provider '%s': hello.protocol_version must be an integer", p->name);
    if (json_integer_value(ver) != PROVIDER_PROTOCOL_VERSION)
        return rv_error_set(err, RV_EPROTO, false,
                            "provider '%s' speaks protocol %lld; reeve speaks %d; upgrade one "
                            "of them",
                            p->name, (long long)json_integer_value(ver), PROVIDER_PROTOCOL_VERSION);
    const json_t *caps = json_object_get(h, "capabilities");
    if (!is_string_array(caps, RV_PROVIDER_CAPABILITIES_MAX))
        return rv_error_set(err, RV_EPROTO, false,
                            "provider '%s': hello.capabilities must be an array of strings",
                            p->name);
    size_t i;
    json_t *v;
    json_array_foreach(caps, i, v)
    {
        if (!cap_offered(json_string_value(v))) {
            char c[RV_PROVIDER_METHOD_MAX];
            sanitize(c, sizeof(c), json_string_value(v), json_string_length(v));
            return rv_error_set(err, RV_EPROTO, false,
                                "provider '%s' claims capability '%s', which reeve did not offer",
                                p->name, c);
        }
    }
    const char *bad = describe_check(json_object_get(h, "describe"));
    if (bad != NULL)
        return rv_error_set(err, RV_EPROTO, false, "provider '%s': hello.%s", p->name, bad);
    return 0;
}

static int error_code_of(const char *name)
{
    for (size_t i = 0; i < sizeof(error_codes) / sizeof(error_codes[0]); i++) {
        if (strcmp(error_codes[i].name, name) == 0)
            return error_codes[i].code;
    }
    return 0;
}

/* Hand a reply frame to its call; p->mu is held. Returns 0, or RV_EPROTO
 * with msg set when the frame breaks the protocol. */
static int reply_dispatch_locked(struct provider *p, struct gen *g, json_t *f, char *msg,
                                 size_t cap)
{
    const json_t *type = json_object_get(f, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "reply") != 0) {
        snprintf(msg, cap, "expected a reply frame (\"type\":\"reply\")");
        return RV_EPROTO;
    }
    const json_t *id = json_object_get(f, "id");
    if (!json_is_integer(id) || json_integer_value(id) < 1) {
        snprintf(msg, cap, "reply.id must be a positive integer");
        return RV_EPROTO;
    }
    uint64_t want = (uint64_t)json_integer_value(id);
    struct call *c = p->calls;
    while (c != NULL && !(c->id == want && c->gen == g->no && !c->done))
        c = c->next;
    if (c == NULL) {
        snprintf(msg, cap, "reply for unknown id %llu", (unsigned long long)want);
        return RV_EPROTO;
    }
    json_t *result = json_object_get(f, "result");
    json_t *error = json_object_get(f, "error");
    if ((result == NULL) == (error == NULL)) {
        snprintf(msg, cap, "reply %llu must have exactly one of result and error",
                 (unsigned long long)want);
        return RV_EPROTO;
    }
    if (result != NULL) {
        if (!json_is_object(result)) {
            snprintf(msg, cap, "reply %llu: result must be an object", (unsigned long long)want);
            return RV_EPROTO;
        }
        c->result = json_incref(result);
        c->code = 0;
        /* The caller owns the result from here: drop the frame's reference
         * under the mutex, so no other thread touches its count again. */
        json_object_del(f, "result");
    } else {
        const json_t *code = json_object_get(error, "code");
        const json_t *retry = json_object_get(error, "retryable");
        const json_t *text = json_object_get(error, "message");
        int rc = json_is_string(code) ? error_code_of(json_string_value(code)) : 0;
        if (!json_is_object(error) || rc == 0 || !json_is_boolean(retry) || !json_is_string(text)) {
            snprintf(msg, cap,
                     "reply %llu: error must be {code: not_found|invalid|conflict|quota|"
                     "unavailable|timeout|internal, retryable: bool, message: string}",
                     (unsigned long long)want);
            return RV_EPROTO;
        }
        char clean[RV_ERROR_MSG_MAX / 2];
        sanitize(clean, sizeof(clean), json_string_value(text), json_string_length(text));
        c->code = rc;
        c->retryable = json_is_true(retry);
        snprintf(c->msg, sizeof(c->msg), "provider '%s': %s", p->name, clean);
    }
    c->done = true;
    pthread_cond_broadcast(&p->cv);
    return 0;
}

/* --- helper threads ------------------------------------------------------ */

static void *reader_main(void *arg)
{
    struct gen *g = arg;
    struct provider *p = g->p;
    char why[RV_ERROR_MSG_MAX / 2];
    char msg[RV_ERROR_MSG_MAX];
    int code = RV_EPROTO;
    for (;;) {
        size_t len;
        int rc = gen_next_line(&len, g, -1);
        if (rc == RV_ECANCELED)
            return NULL;
        if (rc == RV_ELIMIT) {
            snprintf(why, sizeof(why), "a frame longer than %d bytes", RV_PROVIDER_FRAME_MAX);
            break;
        }
        if (rc != 0) {
            code = RV_EUNAVAIL;
            gen_exit_desc(why, sizeof(why), g);
            break;
        }
        if (len == 0 || (len == 1 && g->rbuf.data[0] == '\r')) {
            gen_consume(g, len + 1);
            continue;
        }
        json_t *f = frame_parse(g->rbuf.data, len, why, sizeof(why));
        gen_consume(g, len + 1);
        if (f == NULL)
            break;
        pthread_mutex_lock(&p->mu);
        rc = reply_dispatch_locked(p, g, f, why, sizeof(why));
        pthread_mutex_unlock(&p->mu);
        json_decref(f);
        if (rc != 0)
            break;
    }
    if (code == RV_EPROTO)
        snprintf(msg, sizeof(msg), "provider '%s' broke the protocol: %s; restarting it", p->name,
                 why);
    else
        snprintf(msg, sizeof(msg), "provider '%s' %s; restarting it", p->name, why);
    pthread_mutex_lock(&p->mu);
    gen_detach_locked(p, g, code, msg);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Forward one stderr line to the log. */
static void errlog_emit(struct provider *p, const char *line, size_t len, bool cut)
{
    char clean[RV_PROVIDER_LOG_LINE_MAX + 1];
    if (len > 0 && line[len - 1] == '\r')
        len--;
    sanitize(clean, sizeof(clean), line, len);
    log_info(LOG_COMPONENT, "%s: %s%s", p->name, clean, cut ? " (line cut)" : "");
}

static void *errlog_main(void *arg)
{
    struct gen *g = arg;
    struct provider *p = g->p;
    char chunk[4096];
    char line[RV_PROVIDER_LOG_LINE_MAX];
    size_t len = 0;
    bool cut = false; /* the current line went past the limit */
    for (;;) {
        struct pollfd pfd[2] = {{g->err_fd, POLLIN, 0}, {g->err_wake[0], POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents == 0) {
            if (pfd[1].revents != 0)
                break;
            continue;
        }
        ssize_t n = read(g->err_fd, chunk, sizeof(chunk));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] == '\n') {
                errlog_emit(p, line, len, cut);
                len = 0;
                cut = false;
            } else if (len < sizeof(line)) {
                line[len++] = chunk[i];
            } else {
                cut = true;
            }
        }
    }
    if (len > 0 || cut)
        errlog_emit(p, line, len, cut);
    return NULL;
}

/* --- starting ------------------------------------------------------------ */

/* Spawn a child and do the handshake within hello_ms. On success *out is a
 * running generation with its threads started. */
static int gen_start(struct gen **out, struct provider *p, int64_t hello_ms, struct rv_error *err)
{
    int rc = 0;
    char *exe = NULL;
    char *frame = NULL;
    json_t *hello = NULL;
    json_t *h = NULL;
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1};
    struct gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, true, "out of memory starting provider '%s'", p->name);
        goto out;
    }
    g->p = p;
    g->pid = -1;
    g->in_fd = g->out_fd = g->err_fd = -1;
    g->wake[0] = g->wake[1] = g->err_wake[0] = g->err_wake[1] = -1;
    buf_init(&g->rbuf);

    rc = resolve_exe(&exe, p->argv[0]);
    if (rc != 0) {
        rc = rv_error_set(err, rc, false,
                          "cannot start provider '%s': '%s' is not an executable file (or not "
                          "in PATH)",
                          p->name, p->argv[0]);
        goto out;
    }
    if (pipe_high(in) != 0 || pipe_high(outp) != 0 || pipe_high(errp) != 0 || pipe_high(rep) != 0 ||
        pipe_high(g->wake) != 0 || pipe_high(g->err_wake) != 0 || set_nonblock(in[1]) != 0 ||
        set_nonblock(outp[0]) != 0) {
        rc = rv_error_set(err, RV_EIO, true, "cannot start provider '%s': pipe: %s", p->name,
                          strerror(errno));
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        rc = rv_error_set(err, RV_ECHILD, true, "cannot start provider '%s': fork: %s", p->name,
                          strerror(errno));
        goto out;
    }
    if (pid == 0)
        child_exec(exe, p, in[0], outp[1], errp[1], rep[1]);
    g->pid = pid;
    /* Also from the parent, so a kill of the group cannot race the child's
     * own setpgid. */
    setpgid(pid, pid);
    close_fd(&in[0]);
    close_fd(&outp[1]);
    close_fd(&errp[1]);
    close_fd(&rep[1]);
    g->in_fd = in[1];
    g->out_fd = outp[0];
    g->err_fd = errp[0];
    in[1] = outp[0] = errp[0] = -1;

    int child_errno = 0;
    ssize_t n;
    while ((n = read(rep[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR) {
    }
    if (n > 0) {
        rc = rv_error_set(err, RV_ECHILD, false, "cannot start provider '%s': exec '%s': %s",
                          p->name, exe, strerror(child_errno));
        goto out;
    }
    if (pthread_create(&g->errlog, NULL, errlog_main, g) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, true, "cannot start provider '%s': no thread", p->name);
        goto out;
    }
    g->errlog_started = true;

    int64_t until = now_ms() + hello_ms;
    hello = json_pack("{s:s, s:[i], s:[s,s,s], s:s}", "type", "hello", "protocol_versions",
                      PROVIDER_PROTOCOL_VERSION, "capabilities", offered_caps[0], offered_caps[1],
                      offered_caps[2], "reeve_version", REEVE_VERSION);
    frame = hello != NULL ? json_dumps(hello, JSON_COMPACT) : NULL;
    if (frame == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, true, "out of memory starting provider '%s'", p->name);
        goto out;
    }
    size_t flen = strlen(frame);
    frame[flen] = '\n';
    rc = gen_write(g, frame, flen + 1, until);
    frame[flen] = '\0';
    size_t len = 0;
    if (rc == 0)
        rc = gen_next_line(&len, g, until);
    if (rc != 0) {
        char why[RV_ERROR_MSG_MAX / 2];
        if (rc == RV_ETIMEOUT)
            snprintf(why, sizeof(why), "no hello within %lld ms", (long long)hello_ms);
        else if (rc == RV_ELIMIT)
            snprintf(why, sizeof(why), "its hello is longer than %d bytes", RV_PROVIDER_FRAME_MAX);
        else
            gen_exit_desc(why, sizeof(why), g);
        rc = rv_error_set(err,
                          rc == RV_ELIMIT     ? RV_EPROTO
                          : rc == RV_ETIMEOUT ? RV_ETIMEOUT
                                              : RV_ECHILD,
                          true, "provider '%s' failed its handshake: %s; see its log lines",
                          p->name, why);
        goto out;
    }
    char why[RV_ERROR_MSG_MAX / 2];
    h = frame_parse(g->rbuf.data, len, why, sizeof(why));
    gen_consume(g, len + 1);
    if (h == NULL) {
        rc = rv_error_set(err, RV_EPROTO, true, "provider '%s' sent a bad hello: %s", p->name, why);
        goto out;
    }
    rc = hello_check(p, h, err);
    if (rc != 0)
        goto out;
    if (p->describe == NULL) {
        p->describe = json_incref(json_object_get(h, "describe"));
        p->caps = json_incref(json_object_get(h, "capabilities"));
    } else if (!json_equal(p->describe, json_object_get(h, "describe")) ||
               !json_equal(p->caps, json_object_get(h, "capabilities"))) {
        log_warn(LOG_COMPONENT,
                 "%s: the restarted provider describes itself differently; reeve keeps using "
                 "what it said first until reeve is restarted",
                 p->name);
    }
    if (pthread_create(&g->reader, NULL, reader_main, g) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, true, "cannot start provider '%s': no thread", p->name);
        goto out;
    }
    g->reader_started = true;
    *out = g;
    g = NULL;
out:
    if (g != NULL) {
        if (g->pid > 0)
            gen_destroy(g, false);
        else
            gen_free(g);
    }
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&outp[0]);
    close_fd(&outp[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&rep[0]);
    close_fd(&rep[1]);
    json_decref(h);
    free(frame);
    json_decref(hello);
    free(exe);
    return rc;
}

/* Starts within the last minute; p->mu is held. */
static unsigned recent_starts_locked(struct provider *p, int64_t now, int64_t *first, int64_t *last)
{
    unsigned n = 0;
    *first = INT64_MAX;
    *last = INT64_MIN;
    for (size_t i = 0; i < RV_PROVIDER_RESTARTS_PER_MIN; i++) {
        int64_t t = p->start_times[i];
        if (t != 0 && t > now - 60000) {
            n++;
            if (t > *last)
                *last = t;
            if (t < *first)
                *first = t;
        }
    }
    return n;
}

static void record_start_locked(struct provider *p, int64_t now)
{
    p->start_times[p->starts % RV_PROVIDER_RESTARTS_PER_MIN] = now;
    p->starts++;
}

/* Make sure a child runs, starting one if needed (with backoff) before
 * until_ms. On success *out is the running generation with users raised. */
static int ensure_running(struct gen **out, struct provider *p, int64_t until_ms,
                          struct rv_error *err)
{
    int rc = 0;
    reap_graveyard(p);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int64_t now = now_ms();
        if (p->cur != NULL)
            break;
        if (now >= until_ms) {
            rc = rv_error_set(err, RV_ETIMEOUT, true,
                              "provider '%s' is not running and could not be started in time",
                              p->name);
            goto out;
        }
        if (p->starting) {
            cond_wait_until(p, until_ms);
            continue;
        }
        int64_t first, last;
        unsigned n = recent_starts_locked(p, now, &first, &last);
        if (n >= RV_PROVIDER_RESTARTS_PER_MIN) {
            rc = rv_error_set(err, RV_EUNAVAIL, true,
                              "provider '%s' was started %u times in the last minute; it stays "
                              "down for %lld s more; check its log lines",
                              p->name, n, (long long)((first + 60000 - now + 999) / 1000));
            goto out;
        }
        int64_t wait = 0;
        if (n > 0) {
            wait = RV_PROVIDER_BACKOFF_BASE_MS;
            for (unsigned i = 1; i < n && wait < RV_PROVIDER_BACKOFF_MAX_MS; i++)
                wait *= 2;
            if (wait > RV_PROVIDER_BACKOFF_MAX_MS)
                wait = RV_PROVIDER_BACKOFF_MAX_MS;
        }
        int64_t next_at = n > 0 ? last + wait : now;
        if (next_at > until_ms) {
            rc = rv_error_set(err, RV_EUNAVAIL, true,
                              "provider '%s' is down; the next restart is in %lld ms", p->name,
                              (long long)(next_at - now));
            goto out;
        }
        if (next_at > now) {
            cond_wait_until(p, next_at);
            continue;
        }
        p->starting = true;
        record_start_locked(p, now);
        pthread_mutex_unlock(&p->mu);
        reap_graveyard(p);
        int64_t hello_ms = until_ms - now_ms();
        if (hello_ms > p->hello_ms)
            hello_ms = p->hello_ms;
        struct gen *g = NULL;
        if (hello_ms < 1)
            hello_ms = 1;
        log_info(LOG_COMPONENT, "%s: restarting", p->name);
        rc = gen_start(&g, p, hello_ms, err);
        pthread_mutex_lock(&p->mu);
        p->starting = false;
        pthread_cond_broadcast(&p->cv);
        if (rc != 0)
            goto out;
        g->no = ++p->gen_no;
        p->cur = g;
    }
    p->cur->users++;
    *out = p->cur;
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* --- public API ---------------------------------------------------------- */

static char **strv_dup(char *const *v, size_t max, bool *too_many)
{
    size_t n = 0;
    while (v[n] != NULL)
        n++;
    *too_many = n > max;
    if (*too_many)
        return NULL;
    char **c = calloc(n + 1, sizeof(*c));
    for (size_t i = 0; c != NULL && i < n; i++) {
        c[i] = strdup(v[i]);
        if (c[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(c[j]);
            free(c);
            c = NULL;
        }
    }
    return c;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static void provider_free(struct provider *p)
{
    if (p == NULL)
        return;
    json_decref(p->describe);
    json_decref(p->caps);
    strv_free(p->argv);
    strv_free(p->env);
    free(p->workdir);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->wmu);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int provider_start(struct provider **out, const struct provider_config *cfg, struct rv_error *err)
{
    int rc = 0;
    struct provider *p = NULL;
    struct gen *g = NULL;
    bool too_many = false;
    pthread_condattr_t ca;
    *out = NULL;
    if (cfg->name == NULL || cfg->name[0] == '\0' || strlen(cfg->name) > RV_PROVIDER_NAME_MAX)
        return rv_error_set(err, RV_EINVAL, false, "a provider needs a name of 1 to %d characters",
                            RV_PROVIDER_NAME_MAX);
    if (cfg->argv == NULL || cfg->argv[0] == NULL || cfg->argv[0][0] == '\0')
        return rv_error_set(err, RV_EINVAL, false, "provider '%s' has no command", cfg->name);
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return rv_error_set(err, RV_ENOMEM, true, "out of memory");
    snprintf(p->name, sizeof(p->name), "%s", cfg->name);
    p->hello_ms = cfg->hello_timeout_ms > 0 ? cfg->hello_timeout_ms : RV_PROVIDER_HELLO_TIMEOUT_MS;
    p->grace_ms =
        cfg->deadline_grace_ms > 0 ? cfg->deadline_grace_ms : RV_PROVIDER_DEADLINE_GRACE_MS;
    p->kill_ms = cfg->kill_grace_ms > 0 ? cfg->kill_grace_ms : RV_PROVIDER_KILL_GRACE_MS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->wmu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);

    p->argv = strv_dup(cfg->argv, RV_PROVIDER_ARGV_MAX, &too_many);
    if (p->argv == NULL && too_many) {
        rc = rv_error_set(err, RV_ELIMIT, false, "provider '%s' has more than %d arguments",
                          p->name, RV_PROVIDER_ARGV_MAX);
        goto out;
    }
    if (cfg->env != NULL)
        p->env = strv_dup(cfg->env, SIZE_MAX, &too_many);
    if (cfg->workdir != NULL)
        p->workdir = strdup(cfg->workdir);
    if (p->argv == NULL || (cfg->env != NULL && p->env == NULL) ||
        (cfg->workdir != NULL && p->workdir == NULL)) {
        rc = rv_error_set(err, RV_ENOMEM, true, "out of memory");
        goto out;
    }
    record_start_locked(p, now_ms());
    rc = gen_start(&g, p, p->hello_ms, err);
    if (rc != 0)
        goto out;
    g->no = ++p->gen_no;
    p->cur = g;
    log_info(LOG_COMPONENT, "%s: started (pid %d)", p->name, (int)g->pid);
    *out = p;
    p = NULL;
out:
    provider_free(p);
    return rc;
}

static bool method_valid(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > RV_PROVIDER_METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((m[i] >= 'a' && m[i] <= 'z') || m[i] == '_'))
            return false;
    }
    return true;
}

static bool method_mutates(const char *m)
{
    static const char *const verbs[] = {"create_", "delete_", "resize_", "attach_", "detach_",
                                        "upgrade_"};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strncmp(m, verbs[i], strlen(verbs[i])) == 0)
            return true;
    }
    return false;
}

static int call_check(struct provider *p, const char *method, json_t *params, int64_t deadline_ms,
                      const char *key, struct rv_error *err)
{
    if (!method_valid(method))
        return rv_error_set(err, RV_EINVAL, false, "provider '%s': bad method name", p->name);
    if (params != NULL && !json_is_object(params))
        return rv_error_set(err, RV_EINVAL, false, "provider '%s': %s: params must be an object",
                            p->name, method);
    if (deadline_ms < 1 || deadline_ms > RV_PROVIDER_DEADLINE_MAX_MS)
        return rv_error_set(err, RV_EINVAL, false, "provider '%s': %s: deadline must be 1 to %d ms",
                            p->name, method, RV_PROVIDER_DEADLINE_MAX_MS);
    if (key != NULL && (key[0] == '\0' || strlen(key) > RV_PROVIDER_IDEMPOTENCY_KEY_MAX))
        return rv_error_set(err, RV_EINVAL, false,
                            "provider '%s': %s: idempotency key must be 1 to %d characters",
                            p->name, method, RV_PROVIDER_IDEMPOTENCY_KEY_MAX);
    if (key == NULL && method_mutates(method))
        return rv_error_set(err, RV_EINVAL, false, "provider '%s': %s needs an idempotency key",
                            p->name, method);
    for (size_t i = 0; i < sizeof(method_caps) / sizeof(method_caps[0]); i++) {
        if (strcmp(method_caps[i].method, method) == 0 &&
            !provider_has_capability(p, method_caps[i].capability))
            return rv_error_set(err, RV_EINVAL, false,
                                "provider '%s' does not support %s (capability '%s')", p->name,
                                method, method_caps[i].capability);
    }
    return 0;
}

int provider_call(json_t **result, struct provider *p, const char *method, json_t *params,
                  int64_t deadline_ms, const char *idempotency_key, struct rv_error *err)
{
    int rc = 0;
    struct gen *g = NULL;
    struct call *c = NULL;
    json_t *req = NULL;
    char *frame = NULL;
    *result = NULL;
    rc = call_check(p, method, params, deadline_ms, idempotency_key, err);
    if (rc != 0)
        return rc;
    int64_t start = now_ms();
    int64_t until = start + deadline_ms;
    rc = ensure_running(&g, p, until, err);
    if (rc != 0)
        return rc;

    c = calloc(1, sizeof(*c));
    pthread_mutex_lock(&p->mu);
    if (c == NULL || p->ncalls >= RV_PROVIDER_INFLIGHT_MAX || g->dead) {
        g->users--;
        pthread_mutex_unlock(&p->mu);
        if (c == NULL)
            rc = rv_error_set(err, RV_ENOMEM, true, "out of memory");
        else if (g->dead)
            rc = rv_error_set(err, RV_EUNAVAIL, true,
                              "provider '%s' was restarted before %s was sent; try again", p->name,
                              method);
        else
            rc =
                rv_error_set(err, RV_EBUSY, true, "provider '%s' has %d calls in flight; try again",
                             p->name, RV_PROVIDER_INFLIGHT_MAX);
        reap_graveyard(p);
        goto out_free;
    }
    c->id = ++p->next_id;
    c->gen = g->no;
    c->next = p->calls;
    p->calls = c;
    p->ncalls++;
    pthread_mutex_unlock(&p->mu);

    int64_t left = until - now_ms();
    req = json_pack("{s:s, s:I, s:s, s:I, s:o}", "type", "request", "id", (json_int_t)c->id,
                    "method", method, "deadline_ms", (json_int_t)(left > 0 ? left : 1), "params",
                    params != NULL ? json_incref(params) : json_object());
    if (req != NULL && idempotency_key != NULL)
        json_object_set_new(req, "idempotency_key", json_string(idempotency_key));
    frame = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    int wrc = RV_ENOMEM;
    size_t flen = frame != NULL ? strlen(frame) : 0;
    if (frame != NULL && flen > RV_PROVIDER_FRAME_MAX) {
        wrc = RV_ELIMIT;
    } else if (frame != NULL) {
        frame[flen] = '\n';
        pthread_mutex_lock(&p->wmu);
        wrc = gen_write(g, frame, flen + 1, until + p->grace_ms);
        pthread_mutex_unlock(&p->wmu);
    }

    pthread_mutex_lock(&p->mu);
    g->users--;
    if (wrc != 0 && !c->done) {
        /* A frame was perhaps half written: this child cannot be trusted
         * with another one. Calls that never reached it fail alike. */
        char msg[RV_ERROR_MSG_MAX];
        if (wrc == RV_ELIMIT || wrc == RV_ENOMEM) {
            c->done = true;
            c->code = wrc;
            c->retryable = wrc == RV_ENOMEM;
            snprintf(c->msg, sizeof(c->msg),
                     wrc == RV_ELIMIT ? "provider '%s': %s request is longer than the frame cap"
                                      : "provider '%s': %s: out of memory",
                     p->name, method);
        } else if (g->dead) {
            c->done = true;
            c->code = RV_EUNAVAIL;
            c->retryable = true;
            snprintf(c->msg, sizeof(c->msg),
                     "provider '%s' was restarted while %s was sent; try again", p->name, method);
        } else {
            snprintf(msg, sizeof(msg), "provider '%s' could not be sent %s (%s); restarting it",
                     p->name, method, wrc == RV_ETIMEOUT ? "its stdin is full" : "it is gone");
            gen_detach_locked(p, g, wrc == RV_ETIMEOUT ? RV_ETIMEOUT : RV_EUNAVAIL, msg);
        }
    }
    while (!c->done) {
        int64_t kill_at = until + p->grace_ms;
        if (now_ms() >= kill_at) {
            char msg[RV_ERROR_MSG_MAX];
            c->done = true;
            c->code = RV_ETIMEOUT;
            c->retryable = true;
            snprintf(c->msg, sizeof(c->msg),
                     "provider '%s' did not answer %s within its deadline of %lld ms; killed it "
                     "(it is restarted on the next call)",
                     p->name, method, (long long)deadline_ms);
            snprintf(msg, sizeof(msg),
                     "provider '%s' was killed because it missed the deadline of %s", p->name,
                     method);
            gen_detach_locked(p, g, RV_EUNAVAIL, msg);
            break;
        }
        cond_wait_until(p, kill_at);
    }
    struct call **pp = &p->calls;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    p->ncalls--;
    pthread_mutex_unlock(&p->mu);
    reap_graveyard(p);

    log_debug(LOG_COMPONENT, "%s: %s id=%llu took %lld ms: %s", p->name, method,
              (unsigned long long)c->id, (long long)(now_ms() - start),
              c->code == 0 ? "ok" : rv_errname(c->code));
    char why[RV_ERROR_MSG_MAX / 2];
    if (c->code != 0) {
        rc = rv_error_set(err, c->code, c->retryable, "%s", c->msg);
    } else if (!result_check(why, sizeof(why), method, c->result)) {
        /* The generation may be gone already; find it by number. */
        char msg[RV_ERROR_MSG_MAX];
        snprintf(msg, sizeof(msg), "provider '%s' broke the protocol: %s; restarting it", p->name,
                 why);
        pthread_mutex_lock(&p->mu);
        if (p->cur != NULL && p->cur->no == c->gen)
            gen_detach_locked(p, p->cur, RV_EPROTO, msg);
        pthread_mutex_unlock(&p->mu);
        reap_graveyard(p);
        rc = rv_error_set(err, RV_EPROTO, true, "%s", msg);
    } else {
        *result = c->result;
        c->result = NULL;
    }
out_free:
    if (c != NULL)
        json_decref(c->result);
    free(c);
    free(frame);
    json_decref(req);
    return rc;
}

const json_t *provider_describe(const struct provider *p)
{
    return p->describe;
}

bool provider_has_capability(const struct provider *p, const char *capability)
{
    size_t i;
    json_t *v;
    json_array_foreach(p->caps, i, v)
    {
        if (strcmp(json_string_value(v), capability) == 0)
            return true;
    }
    return false;
}

const char *provider_name(const struct provider *p)
{
    return p->name;
}

unsigned provider_starts(struct provider *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned n = p->starts;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void provider_stop(struct provider *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    struct gen *g = p->cur;
    p->cur = NULL;
    if (g != NULL) {
        g->dead = true;
        fail_calls_locked(p, g->no, RV_ECANCELED, "provider is stopping");
    }
    pthread_mutex_unlock(&p->mu);
    if (g != NULL)
        gen_destroy(g, true);
    reap_graveyard(p);
    log_info(LOG_COMPONENT, "%s: stopped", p->name);
    provider_free(p);
}
