/* err.h - the one error enum of reeve, and the caller-owned error struct.
 *
 * Functions return 0 or a negative RV_E* code. Details (a message that names
 * the thing and says what to do, and whether a retry can help) go in a
 * struct rv_error owned by the caller. Codes are never reused.
 */
#ifndef REEVE_ERR_H
#define REEVE_ERR_H

#include <stdbool.h>
#include <stddef.h>

#include "limits.h"

/* X(name, value, description) */
#define RV_ERRNO_MAP(X)                                                   \
    X(NOMEM, -1, "out of memory")                                         \
    X(IO, -2, "input/output error")                                       \
    X(INVAL, -3, "invalid argument")                                      \
    X(PARSE, -4, "malformed input")                                       \
    X(LIMIT, -5, "limit exceeded")                                        \
    X(NOTFOUND, -6, "not found")                                          \
    X(EXISTS, -7, "already exists")                                       \
    X(TIMEOUT, -8, "timed out")                                           \
    X(AUTH, -9, "authentication failed")                                  \
    X(PROTO, -10, "protocol error")                                       \
    X(BUSY, -11, "busy, try again")                                       \
    X(CONFLICT, -12, "conflict")                                          \
    X(STALE, -13, "stale state")                                          \
    X(UNAVAIL, -14, "service unavailable")                                \
    X(INVALID_SPEC, -15, "invalid specification")                         \
    X(INTERNAL, -16, "internal error")                                    \
    X(CHILD, -17, "child process failed")                                 \
    X(GIT, -18, "git error")                                              \
    X(HTTP, -19, "http error")                                            \
    X(DB, -20, "database error")                                          \
    X(CRYPTO, -21, "cryptographic error")                                 \
    X(CANCELED, -22, "canceled")                                          \
    X(INTEGRITY, -23, "integrity check failed")

enum rv_errno {
    RV_OK = 0,
#define RV_ERR_ENUM(name, value, desc) RV_E##name = (value),
    RV_ERRNO_MAP(RV_ERR_ENUM)
#undef RV_ERR_ENUM
};

struct rv_error {
    int code;
    bool retryable;
    char msg[RV_ERROR_MSG_MAX];
};

/* Describe a code ("out of memory"); unknown codes give "unknown error". */
const char *rv_strerror(int code);
/* Symbolic name of a code ("NOMEM"); for --json output and logs. */
const char *rv_errname(int code);

/* Fill err (may be NULL) and return code, so callers can write
 * `return rv_error_set(err, RV_EIO, false, "cannot read '%s': %s", ...);` */
int rv_error_set(struct rv_error *err, int code, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void rv_error_clear(struct rv_error *err);

#endif
