#include "recon.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dcs.h"
#include "httpd.h"

static int64_t loop_clock(void *payload)
{
    return (int64_t)uv_now(payload);
}

static void on_httpd_closed(void *payload)
{
    struct recon *r = payload;
    r->closed = true;
}

static void on_api_closed(void *payload)
{
    struct recon *r = payload;
    httpd_close(r->h, on_httpd_closed, r);
}

static void on_stop(uv_async_t *as)
{
    struct recon *r = as->data;
    uv_close((uv_handle_t *)as, NULL);
    uv_close((uv_handle_t *)&r->hang, NULL);
    if (r->api != NULL)
        agentapi_close(r->api, on_api_closed, r);
    else if (r->h != NULL)
        httpd_close(r->h, on_httpd_closed, r);
}

/* The reconciler hangs (its loop stops) for hang_ms: nobody's keepalive is
 * heard, and when it wakes every session is past its deadline. */
static void on_hang(uv_async_t *as)
{
    struct recon *r = as->data;
    struct timespec ts = {r->hang_ms / 1000, (long)(r->hang_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int recon_start(struct recon *r, char tok[][AGENTAPI_TOKEN_HEX_SIZE], const char *ns,
                const char *name, const char *const *nodes, size_t n, struct rv_error *err)
{
    struct httpd_config hc = {.listen = "127.0.0.1:0"};
    int rc = uv_loop_init(&r->loop);
    if (rc != 0)
        return rv_error_set(err, RV_EINTERNAL, false, "uv_loop_init: %s", uv_strerror(rc));
    uv_async_init(&r->loop, &r->stop, on_stop);
    r->stop.data = r;
    uv_async_init(&r->loop, &r->hang, on_hang);
    r->hang.data = r;
    r->started = true;
    if ((rc = dcs_open(&r->dcs, NULL, loop_clock, &r->loop, err)) != 0)
        return rc;
    if ((rc = httpd_new(&r->h, &r->loop, &hc, err)) != 0)
        return rc;
    r->port = httpd_port(r->h);
    if ((rc = agentapi_new(&r->api, &r->loop, r->h, r->dcs, NULL, NULL, err)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = agentapi_registration_issue(tok[i], r->dcs, ns, name, nodes[i], err)) != 0)
            return rc;
    return 0;
}

void recon_run_and_free(struct recon *r)
{
    if (!r->started)
        return;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    r->started = false;
    agentapi_free(r->api);
    dcs_free(r->dcs);
    if (uv_loop_close(&r->loop) != 0)
        fprintf(stderr, "the reconciler's loop still has handles\n");
}
