/* child.h - child-process framing: run a program with a deadline, as
 * another OS user when asked, its output kept bounded.
 *
 * Every child gets its own process group (so a kill at the deadline takes
 * whatever it started too), an empty signal mask, SIGPIPE at its default,
 * the working directory cwd ("/" when that cannot be entered), and only
 * async-signal-safe calls between fork and exec (the agent is
 * multi-threaded).
 *
 * Two ways to use it:
 *   - child_run(): start one program, or a pipeline of a few, wait for them
 *     with one deadline and keep the tail of what they write to the capture
 *     pipe; at the deadline (or when *cancel turns true) every group is
 *     killed and reaped.
 *   - child_spawn() + child_reap() + child_release(): for a caller that
 *     streams the child's stdin or stdout itself (backup | encoder,
 *     decoder | tar -x).
 */
#ifndef REEVE_CHILD_H
#define REEVE_CHILD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "limits.h"

/* What one of the child's standard descriptors is connected to. */
enum child_io {
    CHILD_IO_DEFAULT = 0, /* stdin: /dev/null; stdout and stderr: the capture */
    CHILD_IO_NULL,        /* /dev/null */
    CHILD_IO_CAPTURE,     /* the capture pipe (child_run) or capture_fd (child_spawn) */
    CHILD_IO_PIPE,        /* a pipe whose other end the caller gets in struct child */
    CHILD_IO_FD,          /* the caller's descriptor in_fd / out_fd / err_fd */
};

struct child_spec {
    const char *const *argv; /* argv[0]: an absolute path */
    char *const *envp;       /* the child's whole environment (see child_env) */
    const char *cwd;         /* NULL: "/" */
    bool run_as;             /* switch to uid/gid (and only gid as group) before exec */
    uid_t uid;
    gid_t gid;
    enum child_io in, out, err;
    int in_fd, out_fd, err_fd; /* with CHILD_IO_FD */
    bool close_fds;            /* close every other descriptor in the child */
    const char *label;         /* prefix of messages, "engine_pg"; NULL: "child" */
};

/* A started child. The descriptors are the caller's ends of CHILD_IO_PIPE
 * (-1 otherwise). */
struct child {
    pid_t pid; /* -1 once reaped */
    int in;    /* write end of its stdin */
    int out;   /* read end of its stdout */
    int err;   /* read end of its stderr */
};

#define CHILD_INIT                                                                                 \
    {                                                                                              \
        -1, -1, -1, -1                                                                             \
    }

/* Start s->argv[0]; capture_fd receives what CHILD_IO_CAPTURE names (-1
 * when nothing is captured). Returns 0 or RV_EIO / RV_EINVAL with err set;
 * on failure c holds nothing. */
int child_spawn(struct child *c, const struct child_spec *s, int capture_fd, struct rv_error *err);

/* Start s->argv[0] as a daemon: fork, setsid, fork again and exec, so the
 * program is nobody's child (the caller may exit or restart without taking
 * it along) and owns its session. No CHILD_IO_PIPE nor CHILD_IO_CAPTURE.
 * *pid: the program's pid (not ours to reap). RV_ECHILD when it could not
 * be started. */
int child_spawn_detached(pid_t *pid, const struct child_spec *s, struct rv_error *err);

/* Wait for c until deadline_ms (monotonic, child_now_ms) or *cancel; past
 * either the whole process group is killed and reaped. Returns 0,
 * RV_ETIMEOUT or RV_ECANCELED (killed; *status is the kill's), or RV_EIO
 * when waitpid fails. INT64_MAX waits without a deadline. */
int child_reap(int *status, struct child *c, int64_t deadline_ms, const atomic_bool *cancel);

/* Close the caller's ends of the pipes (its stdin sees EOF); the child
 * runs on. */
void child_close_pipes(struct child *c);

/* Close the caller's ends; a child still running is killed with its group
 * and reaped. A no-op on CHILD_INIT. */
void child_release(struct child *c);

/* How child_run waits. */
struct child_opts {
    int timeout_ms;
    const atomic_bool *cancel; /* NULL: none */
    size_t output_max;         /* the tail kept; 0: RV_CHILD_OUTPUT_MAX */
    bool kill_group_after;     /* also kill what a child left in its group */
    int *close_after_spawn;    /* the caller's descriptors handed to the children */
    size_t n_close;            /* (set to -1 once closed) */
};

struct child_result {
    int why; /* 0, or RV_ETIMEOUT / RV_ECANCELED: every child was killed */
    int status[RV_CHILD_PIPELINE_MAX];    /* as from waitpid */
    int exit_code[RV_CHILD_PIPELINE_MAX]; /* -1 when killed by a signal */
    struct buf out;                       /* the tail of the capture */
};

/* Run the n programs of s (1 to RV_CHILD_PIPELINE_MAX) together with one
 * deadline. Returns 0 when they ran (exit codes and why in r), otherwise
 * RV_EIO / RV_ENOMEM / RV_ELIMIT with err set ("<label>: cannot fork for
 * '<argv[0]>': ..."). Release r with child_result_release. */
int child_run(struct child_result *r, const struct child_spec *s, size_t n,
              const struct child_opts *o, struct rv_error *err);
void child_result_release(struct child_result *r);

/* The exit code of a waitpid status; -1 when killed by a signal. */
int child_exit_code(int status);

/* Append data to tail, dropping the oldest bytes so it never holds more
 * than max. Returns 0 or RV_ENOMEM. */
int child_keep_tail(struct buf *tail, const char *data, size_t n, size_t max);

/* The end of out on one line for a message: trailing newlines and spaces
 * dropped, newlines, CRs and tabs as spaces, at most cap-1 bytes. */
void child_tail_line(char *dst, size_t cap, const struct buf *out);

/* The caller's environment without the variables starting with one of
 * drop (NULL-terminated), followed by add (NULL-terminated, may be NULL).
 * The strings are not copied. NULL when out of memory; free() it. */
char **child_env(const char *const *drop, const char *const *add);

/* Monotonic milliseconds, the clock of every deadline here. */
int64_t child_now_ms(void);

/* Sleep ms milliseconds, resuming after signals. */
void child_sleep_ms(int ms);

#endif
