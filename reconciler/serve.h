/* serve.h - `reeve serve`: the GitOps loop.
 *
 * One libuv loop runs the HTTP server (webhooks, /healthz, /metrics,
 * /plans/<sha>), the timers and the signal handlers; everything that blocks
 * runs in uv_queue_work:
 *   - reconcile passes (reconcile.h), one at a time: a request for a pass
 *     while one runs makes exactly one more run after it (coalescing);
 *   - plan page look-ups, one at a time, on a read-only database connection.
 * Passes are requested at start (with a fetch), by the base tick (without a
 * fetch, unless the last fetch failed), by the poll timer and by webhooks
 * (with a fetch), and when the status outbox has a retry due.
 *
 * The same HTTP server hosts the agent API and the built-in DCS
 * (agentapi.h, dataDir/dcs.db) and GET /api/v1/status. With providers
 * configured, serve starts them and applies the branch (reconcile.h,
 * runners.h): executor workers call back into the loop for registration
 * tokens and DCS deletes, and wake it (uv_async_send) when an action
 * returns, which requests a pass.
 *
 * SIGINT and SIGTERM (or serve_stop) shut down gracefully: no new work,
 * the HTTP server closes after answering what it received, the pass in
 * flight is asked to stop between steps and given RV_SERVE_SHUTDOWN_MS.
 * SIGHUP requests a pass with a fetch.
 */
#ifndef REEVE_SERVE_H
#define REEVE_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

struct serve_options {
    /* Handle SIGINT, SIGTERM and SIGHUP (the command does; tests that run
     * the loop in a thread use serve_stop). */
    bool handle_signals;
};

struct serve;

/* Lock and prepare dataDir, open the database and the mirror, bind the
 * HTTP server (a busy port fails here), write dataDir/port. cfg must
 * outlive the server. */
int serve_new(struct serve **out, const struct config *cfg, const struct serve_options *opt,
              struct rv_error *err);
/* The bound port, and the base of status links. */
uint16_t serve_port(const struct serve *s);
const char *serve_public_url(const struct serve *s);
/* Run until shut down. Returns 0, or RV_ETIMEOUT when work in flight had to
 * be abandoned (serve_free then leaks what that work still uses). */
int serve_run(struct serve *s);
/* Ask a running server to shut down; safe from any thread. */
void serve_stop(struct serve *s);
void serve_free(struct serve *s);

#endif
