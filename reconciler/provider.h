/* provider.h - the client side of the provider protocol (providers/PROTOCOL.md).
 *
 * A provider is an executable that reeve starts once and talks to over its
 * stdin/stdout with newline-delimited JSON. This module spawns it, does the
 * handshake, multiplexes calls from many threads over the one pipe, and
 * keeps it alive: a provider that crashes, hangs past a deadline or breaks
 * the protocol is killed and started again on the next call, with backoff
 * and at most RV_PROVIDER_RESTARTS_PER_MIN starts a minute.
 *
 * Threads. Every function blocks and must run off the libuv loop (the
 * executor calls them from uv_queue_work). provider_call() may be called
 * from any number of threads at once on the same struct provider; replies
 * are matched to calls by id. provider_stop() must not race with calls.
 *
 * Per provider there are two helper threads per running child: one reads
 * replies from stdout, one forwards stderr lines to the log as
 * "provider: <name>: <line>" (cut at RV_PROVIDER_LOG_LINE_MAX bytes).
 *
 * Errors. Every failure caused by the child (it died, hung, sent garbage,
 * or a result of the wrong shape for a method of PROTOCOL.md) is retryable;
 * the child is replaced, and the other calls in flight on it fail too. Errors a provider reports in
 * a reply keep the provider's own retryable flag and map to RV_E* codes: not_found→NOTFOUND,
 * invalid→INVAL, conflict→CONFLICT, quota→LIMIT, unavailable→UNAVAIL, timeout→TIMEOUT,
 * internal→INTERNAL.
 */
#ifndef REEVE_PROVIDER_H
#define REEVE_PROVIDER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

/* The protocol version this reeve speaks. */
#define PROVIDER_PROTOCOL_VERSION 1

struct provider_config {
    const char *name;    /* "aws": used in messages and log lines */
    char *const *argv;   /* NULL-terminated; argv[0] is looked up in PATH */
    char *const *env;    /* NULL-terminated, or NULL to inherit reeve's */
    const char *workdir; /* NULL: reeve's working directory */
    /* 0 picks the default from limits.h; tests shorten them. */
    int64_t hello_timeout_ms;  /* handshake, RV_PROVIDER_HELLO_TIMEOUT_MS */
    int64_t deadline_grace_ms; /* past a deadline, RV_PROVIDER_DEADLINE_GRACE_MS */
    int64_t kill_grace_ms;     /* SIGTERM → SIGKILL, RV_PROVIDER_KILL_GRACE_MS */
};

struct provider;

/* Spawn the provider, do the handshake and validate its hello. On failure
 * *out is NULL and err says why, e.g. "provider 'x' speaks protocol 2;
 * reeve speaks 1". The config is copied. */
int provider_start(struct provider **out, const struct provider_config *cfg, struct rv_error *err);

/* Call method with params (a JSON object; NULL sends {}). deadline_ms is the
 * time the provider has, relative to now; it is told the time left when
 * the request is written. idempotency_key is required for methods that
 * change anything (create_*, delete_*, resize_*) and optional otherwise.
 * On success *result holds a new reference to the reply's result object. */
int provider_call(json_t **result, struct provider *p, const char *method, json_t *params,
                  int64_t deadline_ms, const char *idempotency_key, struct rv_error *err);

/* The describe object of the first handshake; valid until provider_stop(). */
const json_t *provider_describe(const struct provider *p);

/* Whether the provider agreed to a capability ("resize", "volumes"). */
bool provider_has_capability(const struct provider *p, const char *capability);

/* The provider's name, as configured. */
const char *provider_name(const struct provider *p);

/* Starts of the child so far (1 after provider_start); for tests and metrics. */
unsigned provider_starts(struct provider *p);

/* Close the child's stdin, give it RV_PROVIDER_STOP_WAIT_MS to exit, then
 * kill it; join the helper threads and free p. provider_stop(NULL) is a
 * no-op. */
void provider_stop(struct provider *p);

#endif
