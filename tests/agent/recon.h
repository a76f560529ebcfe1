/* recon.h - the reconciler side of the agent tests: the built-in DCS and the
 * agent API on an httpd, on a loop of the test's own, with registration
 * tokens issued before the loop runs (the DCS is single-threaded).
 *
 * The loop runs on the test's main thread (libh2o keeps per-thread memory
 * pools that only the main thread's exit releases cleanly); the scenario
 * runs in a thread of its own and ends the loop with uv_async_send(&stop). */
#ifndef REEVE_TEST_RECON_H
#define REEVE_TEST_RECON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agentapi.h"
#include "err.h"

struct recon {
    uv_loop_t loop;
    struct httpd *h;
    struct dcs *dcs;
    struct agentapi *api;
    uv_async_t stop; /* send from the scenario: closes everything */
    uv_async_t hang; /* send from the scenario: the loop stops for hang_ms */
    int hang_ms;
    uint16_t port; /* the agent API's port on 127.0.0.1 */
    bool started;  /* handles exist: run the loop with stop to close them */
    bool closed;   /* the httpd finished closing */
};

/* Open the DCS, httpd and agent API, and issue one registration token per
 * node of cluster ns/name. Returns 0, or an error described in err. */
int recon_start(struct recon *r, char tok[][AGENTAPI_TOKEN_HEX_SIZE], const char *ns,
                const char *name, const char *const *nodes, size_t n, struct rv_error *err);
/* Run the loop until stop closes everything, then free. */
void recon_run_and_free(struct recon *r);

#endif
