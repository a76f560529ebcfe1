/* watchdog.h - the primary's dead-man switch (docs/agent.md, "Fencing").
 *
 * A child process forked at agent start, before the loop runs (the agent
 * is single-threaded then). The agent sends it one byte over a pipe: 'A'
 * (armed) on each acknowledged keepalive while primary, 'D' (disarmed)
 * when it is not primary or has stopped cleanly. While armed, a silence of
 * deadline_ms, or the pipe closing (the agent died), makes the watchdog
 * fence the server on its own: standby.signal in the data directory, then
 * SIGINT (fast shutdown) to the postmaster, SIGQUIT (immediate) if it is
 * still alive after RV_AGENT_WATCHDOG_STOP_MS. It then stays disarmed until
 * the next 'A'. The pipe closing while disarmed ends it.
 */
#ifndef REEVE_WATCHDOG_H
#define REEVE_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "limits.h"

struct watchdog {
    int fd; /* write end of the heartbeat pipe; -1: closed */
    pid_t pid;
    bool armed;  /* the last byte sent was 'A' */
    bool broken; /* a write failed: logged once */
};

/* Fork the watchdog for the server in data_dir (absolute). Call before any
 * thread exists. */
int watchdog_start(struct watchdog *w, const char *data_dir, int64_t deadline_ms,
                   struct rv_error *err);
/* Heartbeat: the primary's lease was just renewed. Never blocks. */
void watchdog_arm(struct watchdog *w);
/* Not a primary (any more): the watchdog must not fence. Never blocks. */
void watchdog_disarm(struct watchdog *w);
/* Disarm, close the pipe and reap the watchdog (bounded). Idempotent. */
void watchdog_release(struct watchdog *w);

#endif
