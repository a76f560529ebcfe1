/* testutil.h - helpers shared by the tests in tests/agent/ that run real
 * database servers: clocks and bounded waits, private temporary directories
 * owned by the servers' user, and tools run as that user.
 *
 * When a test runs as root the servers run as an unprivileged user
 * ("postgres", "mysql"); the helpers taking an os_user act only then.
 * PostgreSQL nodes and queries are in testutil_pg.h (they need libpq).
 */
#ifndef REEVE_TESTS_AGENT_TESTUTIL_H
#define REEVE_TESTS_AGENT_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void tu_sleep_ms(int ms);
/* Milliseconds on the monotonic clock (for deadlines). */
int64_t tu_now_ms(void);
/* Milliseconds since the epoch (for timestamps). */
int64_t tu_wall_ms(void);

/* A TCP port for this run's servers, from the process id: 20000 + (pid +
 * salt) % 20000; tests that may run at the same time pass different salts. */
int tu_port(int salt);

/* The user servers run as: os_user when running as root, else NULL. */
const char *tu_os_user(const char *os_user);
/* Give path to os_user (only when root and os_user is not NULL). 0 or -1. */
int tu_chown(const char *path, const char *os_user);
/* Make /tmp/<name>-XXXXXX into dir (cap bytes), owned by os_user (see
 * tu_chown), with the given mode. 0 or -1. */
int tu_tmpdir(char *dir, size_t cap, const char *name, const char *os_user, mode_t mode);
/* Remove dir and all below it. 0 or -1. */
int tu_rm_tree(const char *dir);
/* tu_rm_tree of a test's directory, unless REEVE_KEEP_TEST_DIRS is set (kept
 * for a look after a failure); nothing for "". */
void tu_rm_test_dir(const char *dir);

/* A query of one value: the first value of the first row of q on node into
 * out ("" for none); false on any error. */
typedef bool (*tu_query_fn)(const void *node, const char *q, char *out, size_t cap);
/* Poll query every 50 ms until q gives want; fail the test (naming who, the
 * query, the last value and the wait) after ms milliseconds. */
void tu_wait_value(tu_query_fn query, const void *node, const char *who, const char *q,
                   const char *want, int ms);

/* Start the program path with args (args[0] is its name) as os_user (see
 * tu_os_user), in /tmp, stdout to out_fd (-1: stdout and stderr to
 * /dev/null), env_name=env_value added when env_name is not NULL. The child's
 * pid, or -1. */
pid_t tu_spawn_as(const char *os_user, const char *path, const char *const *args, int out_fd,
                  const char *env_name, const char *env_value);
/* Wait for pid; its exit code, or -1 when it did not exit normally. */
int tu_wait_exit(pid_t pid);

#endif
