/* window.h - maintenance windows and pause files: when reeve may disrupt a
 * cluster, and which namespaces a person has paused.
 *
 * A window is spec.maintenance.window, exactly the grammar the schema
 * accepts (specs-schema/cluster.schema.json):
 *
 *   "Sun 02:00-04:00"    every Sunday from 02:00 to 04:00 UTC
 *   "Daily 22:00-23:30"  every day
 *   "Sat 23:00-01:00"    an end before the start runs past midnight: from
 *                        Saturday 23:00 to Sunday 01:00
 *
 * Days are Mon..Sun or Daily, times HH:MM in UTC; the start is inside the
 * window, the end is not. A cluster without a window may be changed at any
 * time.
 *
 * Disruptive actions - those that restart a database server or move the
 * primary role - run only while their cluster's window is open
 * (window_kind_disruptive has the list; docs/maintenance.md says why).
 * Everything else - new instances and replicas, removing replicas, users,
 * parameters that reload, backups, deletion of a deleted spec - runs at
 * once.
 *
 * Pause files. A file clusters/<namespace>/PAUSED on the main branch pauses
 * the namespace: the executor starts no new action on its clusters (runs in
 * progress finish). The file's first line, if any, is the reason.
 *
 * Everything here is a pure function of its arguments (time is passed in,
 * Unix seconds), so that tests and plans are reproducible.
 */
#ifndef REEVE_WINDOW_H
#define REEVE_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "limits.h"
#include "spec.h"

#define WINDOW_DAILY 7 /* window.day: every day */

struct window {
    int day;                                /* 0 Monday .. 6 Sunday, or WINDOW_DAILY */
    int from;                               /* minutes after 00:00 UTC, 0..1439 */
    int minutes;                            /* length, 1..1439 (an end before the start wraps) */
    char text[sizeof("Daily 00:00-00:00")]; /* as written: "Sun 02:00-04:00" */
};

/* Parse text as the schema accepts it. RV_EINVAL, with a message that says
 * how to write one, when it does not match or has no length. */
int window_parse(struct window *out, const char *text, struct rv_error *err);

/* Whether the window is open at now. */
bool window_is_open(const struct window *w, int64_t now);
/* When the window next opens: now itself while it is open. */
int64_t window_next_open(const struct window *w, int64_t now);

/* "3h12m", "2d1h0m", "45m": a duration in seconds, rounded up to a minute
 * (a positive duration is never "0m"). */
void window_duration(char *out, size_t size, int64_t seconds);

/* Whether an action of this kind (planner words: "restart_node", ...)
 * waits for its cluster's maintenance window. */
bool window_kind_disruptive(const char *kind);

/* Should an action of kind on cluster ("namespace/name") wait, given the
 * desired specs? True when it is disruptive, its cluster has a window, and
 * the window is closed at now. Then why is "waiting for maintenance window
 * Sun 02:00-04:00" (no countdown: the apply's status stays the same while it
 * waits) and *out_until when the window opens. A cluster that is not in set
 * (its spec was deleted) has no window. An unreadable window (the specs
 * were not validated) holds the action with a message naming it. */
bool window_hold(char *why, size_t size, int64_t *out_until, const struct spec_set *set,
                 const char *cluster, const char *kind, int64_t now);

/* --- pause files --- */

#define WINDOW_PAUSE_FILE "PAUSED"

/* One paused namespace. */
struct window_pause {
    char namespace_[RV_NAME_MAX + 1];
    /* "paused: clusters/payments/PAUSED (quarter-end freeze)", or without
     * the parenthesis when the file is empty. */
    char why[RV_WINDOW_PAUSE_WHY_MAX];
};

/* The text of a pause file of namespace_ with content (len bytes, not
 * NUL-terminated, may be NULL): the first line, trimmed, control
 * characters dropped, cut to RV_WINDOW_PAUSE_REASON_MAX bytes with "...". */
void window_pause_describe(struct window_pause *out, const char *namespace_, const char *content,
                           size_t len);

#endif
