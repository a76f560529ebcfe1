/* log.h - the process-wide log sink (one of the two allowed globals).
 * Lines go to stderr, as text ("2026-11-21T05:00:00Z info source: fetched")
 * or as JSON objects, one per line, for log shippers.
 */
#ifndef REEVE_LOG_H
#define REEVE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
void log_set_json(bool json);
/* Parse "debug", "info", "warn", "error"; returns 0 or RV_EINVAL. */
int log_level_parse(enum log_level *out, const char *name);
/* component is a short subsystem name ("source", "webhook", "planner"). */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) log_msg(LOG_DEBUG, (c), __VA_ARGS__)
#define log_info(c, ...) log_msg(LOG_INFO, (c), __VA_ARGS__)
#define log_warn(c, ...) log_msg(LOG_WARN, (c), __VA_ARGS__)
#define log_error(c, ...) log_msg(LOG_ERROR, (c), __VA_ARGS__)

#endif
