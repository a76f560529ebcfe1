/* recon.h - the reconciler side of the agent tests: the built-in DCS and the
 * agent API on an httpd, on a loop of the test's own, with registration
 * tokens issued before the loop runs (the DCS is single-threaded).
 *
 * The loop runs on the test's main thread (libh2o keeps per-thread memory
 * pools that only the main thread's exit releases cleanly); the scenario
 * runs in a thread of its own and ends the loop with uv_async_send(&stop).
 *
 * Backups: GET /v1/agents/config answers, to every agent, the JSON given to
 * recon_set_config (404 until then); POST /v1/agents/backups is validated
 * by the agent API as in reeve serve, and its records are kept (by
 * backup_id, the last one sent wins) for recon_posted, its log lines (in
 * arrival order, every one sent) for recon_posted_logs. */
#ifndef REEVE_TEST_RECON_H
#define REEVE_TEST_RECON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <pthread.h>

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

    /* backups, under mu (the scenario thread reads, the loop writes) */
    pthread_mutex_t mu;
    bool mu_inited;
    char *config_json;     /* NULL: 404 */
    json_t *records;       /* posted records, in arrival order of their ids */
    json_t *wal;           /* the last "wal" posted, or NULL */
    size_t config_fetches; /* GET /v1/agents/config answered 200 */
    size_t posts;          /* POST /v1/agents/backups accepted */
    json_t *logs;          /* posted log lines, in arrival order */
    size_t log_posts;      /* accepted POSTs that carried log lines */
};

/* Open the DCS, httpd and agent API, and issue one registration token per
 * node of cluster ns/name. Returns 0, or an error described in err. */
int recon_start(struct recon *r, char tok[][AGENTAPI_TOKEN_HEX_SIZE], const char *ns,
                const char *name, const char *const *nodes, size_t n, struct rv_error *err);
/* Serve json (copied; NULL: answer 404) at GET /v1/agents/config. Any
 * thread. Returns 0 or RV_ENOMEM. */
int recon_set_config(struct recon *r, const char *json);
/* A copy of the posted records (an array; json_decref it), NULL on out of
 * memory; *wal (may be NULL) a copy of the last "wal" object or NULL. Any
 * thread. */
json_t *recon_posted(struct recon *r, json_t **wal);
/* A copy of every posted log line ({"backup_id","at","level","line"}, in
 * arrival order; json_decref it), NULL on out of memory; *posts (may be
 * NULL) the accepted POSTs that carried lines. Any thread. */
json_t *recon_posted_logs(struct recon *r, size_t *posts);
/* Times the configuration was fetched (200). Any thread. */
size_t recon_config_fetches(struct recon *r);

/* Run the loop until stop closes everything, then free. */
void recon_run_and_free(struct recon *r);

#endif
