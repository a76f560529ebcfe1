#include "recon.h"

#include <stdio.h>
#include <stdlib.h>
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

static void on_config(struct httpd_req *req, const struct agentapi_agent *who, void *payload)
{
    struct recon *r = payload;
    pthread_mutex_lock(&r->mu);
    if (r->config_json == NULL) {
        /* What reeve serves for a cluster with no backup section. */
        char body[512];
        int n = snprintf(body, sizeof(body),
                         "{\"cluster\":\"%s\",\"engine\":\"postgresql\",\"digest\":\"none\","
                         "\"backup\":null,\"restore\":null,\"requests\":[]}",
                         who->key);
        httpd_respond(req, 200, "application/json", body, (size_t)n);
        r->config_fetches++;
    } else {
        httpd_respond(req, 200, "application/json", r->config_json, strlen(r->config_json));
        r->config_fetches++;
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_backups(struct httpd_req *req, const struct agentapi_agent *who, json_t *body,
                       void *payload)
{
    struct recon *r = payload;
    size_t i, n = 0;
    json_t *rec;
    char answer[64];
    (void)who;
    pthread_mutex_lock(&r->mu);
    json_array_foreach(json_object_get(body, "records"), i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "backup_id"));
        size_t k;
        json_t *old;
        bool replaced = false;
        json_array_foreach(r->records, k, old)
        {
            if (!replaced &&
                strcmp(json_string_value(json_object_get(old, "backup_id")), id) == 0) {
                json_array_set(r->records, k, rec);
                replaced = true;
            }
        }
        if (!replaced)
            json_array_append(r->records, rec);
        n++;
    }
    json_t *logs = json_object_get(body, "logs");
    if (json_array_size(logs) > 0) {
        json_array_extend(r->logs, logs);
        r->log_posts++;
    }
    json_t *wal = json_object_get(body, "wal");
    if (json_is_object(wal)) {
        json_decref(r->wal);
        r->wal = json_deep_copy(wal);
    }
    r->posts++;
    pthread_mutex_unlock(&r->mu);
    snprintf(answer, sizeof(answer), "{\"accepted\":%zu}", n);
    httpd_respond(req, 200, "application/json", answer, strlen(answer));
}

int recon_set_config(struct recon *r, const char *json)
{
    char *copy = json != NULL ? strdup(json) : NULL;
    if (json != NULL && copy == NULL)
        return RV_ENOMEM;
    pthread_mutex_lock(&r->mu);
    free(r->config_json);
    r->config_json = copy;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

json_t *recon_posted(struct recon *r, json_t **wal)
{
    pthread_mutex_lock(&r->mu);
    json_t *out = json_deep_copy(r->records);
    if (wal != NULL)
        *wal = r->wal != NULL ? json_deep_copy(r->wal) : NULL;
    pthread_mutex_unlock(&r->mu);
    return out;
}

json_t *recon_posted_logs(struct recon *r, size_t *posts)
{
    pthread_mutex_lock(&r->mu);
    json_t *out = json_deep_copy(r->logs);
    if (posts != NULL)
        *posts = r->log_posts;
    pthread_mutex_unlock(&r->mu);
    return out;
}

size_t recon_config_fetches(struct recon *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->config_fetches;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int recon_start(struct recon *r, char tok[][AGENTAPI_TOKEN_HEX_SIZE], const char *ns,
                const char *name, const char *const *nodes, size_t n, struct rv_error *err)
{
    struct httpd_config hc = {.listen = "127.0.0.1:0"};
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        return rv_error_set(err, RV_ENOMEM, false, "pthread_mutex_init failed");
    r->mu_inited = true;
    r->records = json_array();
    r->logs = json_array();
    if (r->records == NULL || r->logs == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
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
    struct agentapi_backup_hooks hooks = {.config = on_config, .records = on_backups, .payload = r};
    agentapi_set_backup_hooks(r->api, &hooks);
    for (size_t i = 0; i < n; i++)
        if ((rc = agentapi_registration_issue(tok[i], r->dcs, ns, name, nodes[i], err)) != 0)
            return rc;
    return 0;
}

static void backups_release(struct recon *r)
{
    if (!r->mu_inited)
        return;
    free(r->config_json);
    r->config_json = NULL;
    json_decref(r->records);
    json_decref(r->wal);
    json_decref(r->logs);
    r->records = r->wal = r->logs = NULL;
    pthread_mutex_destroy(&r->mu);
    r->mu_inited = false;
}

void recon_run_and_free(struct recon *r)
{
    if (!r->started) {
        backups_release(r);
        return;
    }
    uv_run(&r->loop, UV_RUN_DEFAULT);
    r->started = false;
    agentapi_free(r->api);
    dcs_free(r->dcs);
    if (uv_loop_close(&r->loop) != 0)
        fprintf(stderr, "the reconciler's loop still has handles\n");
    backups_release(r);
}
