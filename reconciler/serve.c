/* serve.c - `reeve serve`: the event loop, its timers, signals, HTTP
 * endpoints, and the hand-off of blocking work to the thread pool. */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "agentapi.h"
#include "backups.h"
#include "buf.h"
#include "crypto.h"
#include "db.h"
#include "dcs.h"
#include "httpd.h"
#include "journal.h"
#include "limits.h"
#include "log.h"
#include "metrics.h"
#include "pages.h"
#include "provider.h"
#include "reconcile.h"
#include "runners.h"
#include "seal.h"
#include "webhook.h"

extern char **environ;

/* How long a registration token may take to reach dcs.db. */
#define SERVE_DURABLE_POLL_MS 20
#define SERVE_DURABLE_POLLS 500

/* Applies shown by GET /api/v1/status: the newest ones. */
#define SERVE_STATUS_APPLIES_MAX 32

#define LOG_C "serve"

/* One plan page look-up, answered from a page worker. */
struct page_req {
    struct serve *s;
    struct httpd_req *req;
    uv_work_t work;
    char sha[65];
    bool json;
    bool is_status; /* GET /api/v1/status rather than a plan page */
    int status;
    const char *content_type;
    struct buf body;
};

struct serve {
    const struct config *cfg;
    uv_loop_t loop;
    bool loop_inited;
    struct httpd *httpd;
    bool httpd_closed;
    struct webhook_route *hook;
    char hook_path[64];
    uv_timer_t base_timer, poll_timer, outbox_timer, shutdown_timer;
    uv_signal_t sig[3];
    bool signals;
    uv_async_t stop_async;
    bool handles_inited;
    size_t handles_open;
    char *public_url;
    uint16_t port;
    int lock_fd;
    struct reconcile *rec;
    struct db *pages_db;

    /* the reconcile pass (one in flight) */
    uv_work_t pass_work;
    bool pass_running, pass_again, again_fetch;
    struct reconcile_event *pending; /* events for the next pass, loop-owned */
    size_t npending;
    struct reconcile_event *events; /* events of the pass in flight */
    struct reconcile_input in;
    struct reconcile_result out;
    atomic_bool cancel;

    /* plan pages (one look-up in flight, the rest queued) */
    struct page_req *pages[RV_SERVE_PAGE_QUEUE_MAX];
    size_t npages; /* queued, the first one running when page_running */
    bool page_running;

    /* health and metrics */
    bool fetched_once;
    bool last_fetch_failed;
    int64_t last_fetch;     /* Unix seconds of the last successful fetch */
    int64_t last_reconcile; /* of the last pass that reconciled without failure */
    char last_error[RV_ERROR_MSG_MAX];
    struct metrics metrics;
    uint64_t duplicate_deliveries;

    bool shutting_down;
    bool abandoned;

    /* the agent API and the built-in DCS */
    struct dcs *dcs;
    struct agentapi *api;
    bool api_closing, api_closed;
    char *agent_url;

    /* applying: providers, runners, and calls from executor workers into
     * the loop (registration tokens, DCS deletes) */
    struct provider **providers;
    size_t nproviders;
    struct runners *runners;
    bool applying;
    uv_async_t exec_async, call_async;
    bool asyncs_inited;
    pthread_mutex_t call_mu;
    pthread_cond_t call_cv;
    bool call_mu_inited;
    struct loop_call *calls; /* queued, under call_mu */
    bool calls_closed;       /* under call_mu */

    /* backups: records, agent configurations, verification (backups.h) */
    struct backups *backups;
    size_t bjobs;     /* backup jobs on the thread pool */
    size_t bverifies; /* of which verifications */

    /* the seal key pair (dataDir/seal.key, seal.pub): opens the users'
     * sealed passwords (users.h, docs/secrets.md) */
    struct seal_keys seal;
    char seal_pub[96]; /* "reeve-seal-v1 <base64>" */
};

/* A call a worker thread makes on the loop thread, and waits for. */
struct loop_call {
    int (*fn)(struct serve *s, struct loop_call *c);
    const char *namespace_, *cluster, *node;
    const char *token; /* issue */
    const char *key;   /* read */
    char *value;       /* read: the key's value (malloc'd), NULL when absent */
    const char *put;   /* write: the value to put at key (JSON text) */
    uint64_t seq;      /* issue: the DCS change to wait for; durable: in and out */
    int rc;
    struct rv_error err;
    bool done;
    struct loop_call *next;
};

static void request_pass(struct serve *s, bool fetch);
static void pass_done(uv_work_t *w, int status);

/* --- small helpers --- */

static int mkdir_p(const char *path, struct rv_error *err)
{
    char *p = strdup(path);
    int rc = 0;
    if (p == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = rv_error_set(err, RV_EIO, false,
                              "cannot create dataDir '%s': %s; create it or fix its parent's "
                              "permissions",
                              path, strerror(errno));
            break;
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    return rc;
}

static int write_port_file(const struct serve *s, struct rv_error *err)
{
    struct buf path = BUF_INIT, tmp = BUF_INIT;
    FILE *f = NULL;
    int rc = 0;
    if (buf_printf(&path, "%s/port", s->cfg->data_dir) != 0 ||
        buf_printf(&tmp, "%s/port.tmp", s->cfg->data_dir) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    f = fopen(tmp.data, "w");
    if (f == NULL) {
        rc = rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", tmp.data, strerror(errno));
        goto out;
    }
    bool ok = fprintf(f, "%u\n", (unsigned)s->port) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp.data, path.data) != 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", path.data, strerror(errno));
out:
    buf_release(&path);
    buf_release(&tmp);
    return rc;
}

static void time_text(char *out, size_t size, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --- shutdown --- */

static void handle_closed(uv_handle_t *h)
{
    struct serve *s = h->data;
    s->handles_open--;
}

static void close_handle(struct serve *s, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        s->handles_open++;
        uv_close(h, handle_closed);
    }
}

/* Fail every queued loop call and refuse new ones (loop thread). */
static void calls_close(struct serve *s)
{
    if (!s->call_mu_inited)
        return;
    pthread_mutex_lock(&s->call_mu);
    s->calls_closed = true;
    for (struct loop_call *c = s->calls, *next; c != NULL; c = next) {
        next = c->next;
        c->rc = rv_error_set(&c->err, RV_ECANCELED, true, "reeve is shutting down");
        c->done = true;
    }
    s->calls = NULL;
    pthread_cond_broadcast(&s->call_cv);
    pthread_mutex_unlock(&s->call_mu);
}

/* Once the server is closed and no work is in flight, close every handle;
 * the loop then runs out of things to do and serve_run returns. */
static void maybe_finish(struct serve *s)
{
    if (!s->shutting_down || !s->httpd_closed || s->pass_running || s->page_running ||
        s->npages > 0 || s->bjobs > 0 || (s->api != NULL && !s->api_closed))
        return;
    if (s->asyncs_inited) {
        calls_close(s);
        close_handle(s, (uv_handle_t *)&s->exec_async);
        close_handle(s, (uv_handle_t *)&s->call_async);
    }
    close_handle(s, (uv_handle_t *)&s->base_timer);
    close_handle(s, (uv_handle_t *)&s->poll_timer);
    close_handle(s, (uv_handle_t *)&s->outbox_timer);
    close_handle(s, (uv_handle_t *)&s->shutdown_timer);
    close_handle(s, (uv_handle_t *)&s->stop_async);
    for (int i = 0; s->signals && i < 3; i++)
        close_handle(s, (uv_handle_t *)&s->sig[i]);
}

static void on_httpd_closed(void *payload)
{
    struct serve *s = payload;
    s->httpd = NULL;
    s->httpd_closed = true;
    webhook_route_free(s->hook);
    s->hook = NULL;
    maybe_finish(s);
}

static void on_api_closed(void *payload)
{
    struct serve *s = payload;
    s->api_closed = true;
    if (s->httpd != NULL)
        httpd_close(s->httpd, on_httpd_closed, s);
    else
        on_httpd_closed(s);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    struct serve *s = t->data;
    log_error(LOG_C,
              "work still in flight %d s after the shutdown began (%s%s); abandoning it, "
              "what it was doing is redone on the next start",
              RV_SERVE_SHUTDOWN_MS / 1000, s->pass_running ? "a reconcile pass" : "",
              s->page_running ? (s->pass_running ? ", a page look-up" : "a page look-up") : "");
    s->abandoned = true;
    uv_stop(&s->loop);
}

static void begin_shutdown(struct serve *s, const char *why)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    log_info(LOG_C, "shutting down (%s)%s", why,
             s->pass_running ? "; waiting for the reconcile pass in flight" : "");
    atomic_store(&s->cancel, true);
    uv_timer_stop(&s->base_timer);
    uv_timer_stop(&s->poll_timer);
    uv_timer_stop(&s->outbox_timer);
    for (int i = 0; s->signals && i < 3; i++)
        uv_signal_stop(&s->sig[i]);
    uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, RV_SERVE_SHUTDOWN_MS, 0);
    uv_unref((uv_handle_t *)&s->shutdown_timer);
    /* workers waiting on the loop or on node reports give up */
    calls_close(s);
    if (s->runners != NULL)
        runners_stop(s->runners);
    /* docs/dcs.md: the agent API first, then the HTTP server */
    if (s->api != NULL && !s->api_closing) {
        s->api_closing = true;
        agentapi_close(s->api, on_api_closed, s);
    } else if (s->httpd != NULL) {
        httpd_close(s->httpd, on_httpd_closed, s);
    } else {
        on_httpd_closed(s);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;
    if (signum == SIGHUP) {
        log_info(LOG_C, "SIGHUP: fetching now");
        request_pass(s, true);
        return;
    }
    begin_shutdown(s, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_stop_async(uv_async_t *a)
{
    begin_shutdown(a->data, "stop requested");
}

/* --- reconcile passes --- */

static void pass_work(uv_work_t *w)
{
    struct serve *s = w->data;
    reconcile_pass(&s->out, s->rec, &s->in);
}

static void on_outbox_timer(uv_timer_t *t)
{
    request_pass(t->data, false);
}

static void start_pass(struct serve *s, bool fetch)
{
    s->events = s->pending;
    s->in = (struct reconcile_input){
        .fetch = fetch,
        .events = s->pending,
        .nevents = s->npending,
        .cancel = &s->cancel,
    };
    s->pending = NULL;
    s->npending = 0;
    s->pass_running = true;
    s->pass_work.data = s;
    uv_queue_work(&s->loop, &s->pass_work, pass_work, pass_done);
}

static void account(struct serve *s, const struct reconcile_result *r)
{
    int64_t now = (int64_t)time(NULL);
    struct metrics *m = &s->metrics;
    m->reconcile_passes++;
    if (r->fetched) {
        metrics_observe(&m->fetch_duration, (double)r->fetch_ms / 1000.0);
        if (r->fetch_rc != 0) {
            m->fetch_failures++;
            s->last_fetch_failed = true;
        } else {
            s->fetched_once = true;
            s->last_fetch_failed = false;
            s->last_fetch = now;
        }
    }
    if (r->reconciled)
        metrics_observe(&m->reconcile_duration, (double)r->reconcile_ms / 1000.0);
    if (r->reconciled && !r->failed)
        s->last_reconcile = now;
    if (r->main_known)
        m->clusters_desired = r->clusters_desired;
    m->statuses_posted = r->outbox.posted;
    m->statuses_failed = r->outbox.failed;
    s->duplicate_deliveries += r->duplicate_deliveries;
    if (r->error[0])
        snprintf(s->last_error, sizeof(s->last_error), "%s", r->error);
    else if (!r->failed && !s->last_fetch_failed)
        s->last_error[0] = '\0';
}

static void pass_done(uv_work_t *w, int status)
{
    struct serve *s = w->data;
    (void)status;
    s->pass_running = false;
    free(s->events);
    s->events = NULL;
    account(s, &s->out);
    if (s->shutting_down) {
        maybe_finish(s);
        return;
    }
    if (s->pass_again || s->out.more) {
        bool fetch = s->again_fetch;
        s->pass_again = s->again_fetch = false;
        start_pass(s, fetch);
        return;
    }
    if (s->out.outbox_next_due > 0) {
        int64_t wait = s->out.outbox_next_due - (int64_t)time(NULL);
        if (wait < (int64_t)s->cfg->ticks.fast_s)
            wait = s->cfg->ticks.fast_s;
        uv_timer_start(&s->outbox_timer, on_outbox_timer, (uint64_t)wait * 1000u, 0);
    }
}

/* Run a pass now, or right after the one in flight (coalesced: however
 * many requests arrive meanwhile, one more pass runs). */
static void request_pass(struct serve *s, bool fetch)
{
    if (s->shutting_down)
        return;
    if (s->pass_running) {
        s->pass_again = true;
        s->again_fetch = s->again_fetch || fetch;
        return;
    }
    start_pass(s, fetch);
}

static void on_base_tick(uv_timer_t *t)
{
    struct serve *s = t->data;
    /* A failed fetch is retried at the base rate even without polling. */
    request_pass(s, !s->fetched_once || s->last_fetch_failed);
}

static void on_poll_tick(uv_timer_t *t)
{
    request_pass(t->data, true);
}

/* --- webhooks --- */

static bool our_repo(const struct serve *s, const struct webhook_event *ev)
{
    const char *want = s->cfg->forge.repository;
    if (want == NULL || ev->repo[0] == '\0')
        return true;
    if (strcasecmp(want, ev->repo) == 0)
        return true;
    if (strspn(want, "0123456789") == strlen(want))
        return ev->repo_id == strtoll(want, NULL, 10);
    return false;
}

static int on_webhook(const struct webhook_event *ev, void *payload)
{
    struct serve *s = payload;
    if (!our_repo(s, ev)) {
        log_info(LOG_C, "delivery '%s' is about repository '%s', not '%s'; no pass scheduled",
                 ev->delivery, ev->repo, s->cfg->forge.repository);
        return 0;
    }
    if (s->npending == RV_SERVE_PENDING_EVENTS_MAX)
        return RV_EBUSY;
    if (s->pending == NULL) {
        s->pending = calloc(RV_SERVE_PENDING_EVENTS_MAX, sizeof(*s->pending));
        if (s->pending == NULL)
            return RV_EBUSY;
    }
    struct reconcile_event *e = &s->pending[s->npending++];
    memset(e, 0, sizeof(*e));
    snprintf(e->delivery, sizeof(e->delivery), "%s", ev->delivery);
    if (ev->kind == WEBHOOK_PULL_REQUEST && ev->pr.number > 0) {
        e->pull = (uint64_t)ev->pr.number;
        e->state = ev->pr.action != WEBHOOK_PR_CLOSED ? RECONCILE_PR_OPEN
                   : ev->pr.merged                    ? RECONCILE_PR_MERGED
                                                      : RECONCILE_PR_CLOSED;
        /* A pull request into another branch is not planned against this
         * one: treat it as closed until it is retargeted (an event again). */
        if (strcmp(ev->pr.base_ref, s->cfg->repository.branch) != 0) {
            log_info(LOG_C, "pull request #%lld targets '%s', not '%s'; not planned",
                     (long long)ev->pr.number, ev->pr.base_ref, s->cfg->repository.branch);
            e->state = RECONCILE_PR_CLOSED;
        }
    }
    request_pass(s, true);
    return 0;
}

/* --- HTTP endpoints --- */

static void on_healthz(struct httpd_req *req, void *payload)
{
    struct serve *s = payload;
    char fetch[32] = "", rec[32] = "";
    struct buf b = BUF_INIT;
    const char *status = !s->fetched_once ? "starting" : s->last_fetch_failed ? "degraded" : "ok";
    if (s->fetched_once)
        time_text(fetch, sizeof(fetch), s->last_fetch);
    if (s->last_reconcile)
        time_text(rec, sizeof(rec), s->last_reconcile);
    json_t *j = json_pack("{s:s, s:o, s:o}", "status", status, "last_fetch",
                          fetch[0] ? json_string(fetch) : json_null(), "last_reconcile",
                          rec[0] ? json_string(rec) : json_null());
    if (j != NULL && s->last_error[0])
        json_object_set_new(j, "last_error", json_string(s->last_error));
    char *text = j ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    if (text == NULL) {
        httpd_respond_text(req, 500, "out of memory");
    } else {
        buf_puts(&b, text);
        buf_putc(&b, '\n');
        httpd_respond(req, s->fetched_once ? 200 : 503, "application/json", b.data, b.len);
    }
    free(text);
    json_decref(j);
    buf_release(&b);
}

static void on_metrics(struct httpd_req *req, void *payload)
{
    struct serve *s = payload;
    struct webhook_route_stats st;
    struct buf b = BUF_INIT;
    webhook_route_stats(&st, s->hook);
    s->metrics.webhooks = (struct metrics_webhooks){
        .accepted = st.accepted,
        .rejected = st.unauthorized,
        .duplicate = st.duplicates + s->duplicate_deliveries,
        .ignored = st.ignored,
        .malformed = st.rejected - st.unauthorized,
        .busy = st.busy,
    };
    if (metrics_render(&b, &s->metrics) != 0)
        httpd_respond_text(req, 500, "out of memory");
    else
        httpd_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    buf_release(&b);
}

/* GET /api/v1/status, on the page worker: the newest applies from the
 * journal, the runners' view of desired clusters and node reports. */
static void status_work(struct page_req *p)
{
    struct serve *s = p->s;
    struct rv_error err = {0};
    struct journal_apply applies[SERVE_STATUS_APPLIES_MAX];
    struct journal_status sts[SERVE_STATUS_APPLIES_MAX];
    struct runners_apply_view views[SERVE_STATUS_APPLIES_MAX * 8];
    size_t napplies = 0, nviews = 0;
    sqlite3_stmt *st = NULL;
    char *text = NULL;
    json_t *j = NULL;

    p->status = 500;
    p->content_type = "text/plain; charset=utf-8";
    int rc = db_prepare(&st, s->pages_db, &err, "SELECT id FROM applies ORDER BY id DESC LIMIT ?",
                        "l", (int64_t)SERVE_STATUS_APPLIES_MAX);
    while (rc == 0 && napplies < SERVE_STATUS_APPLIES_MAX &&
           (rc = db_step(st, s->pages_db, &err)) == 1) {
        int64_t id = sqlite3_column_int64(st, 0);
        rc = journal_apply_load(&applies[napplies], s->pages_db, id, &err);
        if (rc == 0 && journal_apply_status(&sts[napplies], s->pages_db, id, &err) != 0)
            snprintf(sts[napplies].text, sizeof(sts[napplies].text), "%s", err.msg);
        if (rc == 0)
            napplies++;
    }
    db_finalize(st);
    if (rc < 0) {
        buf_printf(&p->body, "cannot read the action journal: %s\n", err.msg);
        goto out;
    }
    /* per cluster, the newest apply that has actions of it */
    for (size_t a = 0; a < napplies; a++) {
        for (size_t k = 0; k < applies[a].nactions; k++) {
            const char *cl = applies[a].actions[k].cluster;
            bool seen = false;
            for (size_t v = 0; v < nviews && !seen; v++)
                seen = strcmp(views[v].cluster, cl) == 0;
            if (seen || nviews == sizeof(views) / sizeof(views[0]))
                continue;
            views[nviews++] = (struct runners_apply_view){
                .cluster = cl,
                .commit = applies[a].commit_sha,
                .state = journal_status_state_name(sts[a].state),
                .text = sts[a].text,
            };
        }
    }
    j = s->runners != NULL ? runners_status_json(s->runners, applies, napplies, views, nviews)
                           : json_pack("{s:[]}", "clusters");
    text = j != NULL ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
    if (text == NULL || buf_puts(&p->body, text) != 0 || buf_putc(&p->body, '\n') != 0) {
        buf_clear(&p->body);
        buf_puts(&p->body, "out of memory\n");
        goto out;
    }
    p->status = 200;
    p->content_type = "application/json";
out:
    free(text);
    json_decref(j);
    for (size_t a = 0; a < napplies; a++)
        journal_apply_release(&applies[a]);
}

static void page_work(uv_work_t *w)
{
    struct page_req *p = w->data;
    struct serve *s = p->s;
    struct rv_error err = {0};
    struct pages_page pg = {0};
    if (p->is_status) {
        status_work(p);
        return;
    }
    int rc = pages_store_get(&pg, s->pages_db, p->sha, p->json, !p->json, &err);
    p->content_type = "text/plain; charset=utf-8";
    if (rc == RV_ENOTFOUND) {
        p->status = 404;
        buf_printf(&p->body,
                   "no plan for commit %s; reeve plans the head of every open pull request into "
                   "'%s' and every commit of it: check the sha, and that reeve has fetched it "
                   "(GET /healthz)\n",
                   p->sha, s->cfg->repository.branch);
    } else if (rc != 0) {
        p->status = 500;
        buf_printf(&p->body, "cannot read the plan of %s: %s\n", p->sha, err.msg);
    } else if (p->json) {
        p->status = 200;
        p->content_type = "application/json";
        /* hand the document over as the body, with a final newline */
        p->body.data = pg.json;
        p->body.len = pg.json_len;
        p->body.cap = pg.json_len + 1;
        pg.json = NULL;
        if (buf_putc(&p->body, '\n') != 0)
            p->status = 500;
    } else {
        p->status = 200;
        p->content_type = "text/html; charset=utf-8";
        if (pages_render_html(&p->body, p->sha, pg.head, pg.text, s->cfg->repository.branch) != 0) {
            p->status = 500;
            p->content_type = "text/plain; charset=utf-8";
            buf_clear(&p->body);
            buf_puts(&p->body, "cannot render the plan page; the ?format=json view may work\n");
        }
    }
    pages_page_release(&pg);
}

static void page_next(struct serve *s);

static void page_done(uv_work_t *w, int status)
{
    struct page_req *p = w->data;
    struct serve *s = p->s;
    (void)status;
    if (p->status == 500 || p->body.len == 0)
        log_warn(LOG_C, "plan page of %s: %.*s", p->sha, (int)(p->body.len ? p->body.len - 1 : 0),
                 p->body.data ? p->body.data : "");
    httpd_respond(p->req, p->status, p->content_type, p->body.data ? p->body.data : "",
                  p->body.len);
    buf_release(&p->body);
    free(p);
    s->page_running = false;
    memmove(&s->pages[0], &s->pages[1], (s->npages - 1) * sizeof(s->pages[0]));
    s->npages--;
    page_next(s);
    maybe_finish(s);
}

static void page_next(struct serve *s)
{
    if (s->page_running || s->npages == 0)
        return;
    struct page_req *p = s->pages[0];
    s->page_running = true;
    p->work.data = p;
    uv_queue_work(&s->loop, &p->work, page_work, page_done);
}

/* Does the query ask for format=json? 1 yes, 0 no (HTML), -1 unknown format. */
static int want_json(const char *query)
{
    for (const char *q = query; q && *q;) {
        size_t n = strcspn(q, "&");
        if (n > 7 && strncmp(q, "format=", 7) == 0) {
            if (n == 11 && strncmp(q + 7, "json", 4) == 0)
                return 1;
            if (n == 11 && strncmp(q + 7, "html", 4) == 0)
                return 0;
            return -1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

static void on_plans(struct httpd_req *req, void *payload)
{
    struct serve *s = payload;
    const char *sha = req->path + strlen("/plans");
    char msg[256];
    if (*sha == '/')
        sha++;
    int json = want_json(req->query);
    if (json < 0) {
        httpd_respond_text(req, 400, "unknown format; use ?format=json, or no query for HTML");
        return;
    }
    if (!pages_sha_valid(sha)) {
        snprintf(msg, sizeof(msg),
                 "no plan for '%.80s': plans are at /plans/<sha>, with the full commit id (40 "
                 "or 64 lowercase hex digits)",
                 sha);
        httpd_respond_text(req, 404, msg);
        return;
    }
    if (s->npages == RV_SERVE_PAGE_QUEUE_MAX) {
        httpd_req_add_header(req, "Retry-After", "1");
        httpd_respond_text(req, 503, "too many plan pages requested at once; retry");
        return;
    }
    struct page_req *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        httpd_respond_text(req, 503, "out of memory; retry");
        return;
    }
    p->s = s;
    p->req = req;
    p->json = json == 1;
    snprintf(p->sha, sizeof(p->sha), "%s", sha);
    buf_init(&p->body);
    httpd_req_defer(req);
    s->pages[s->npages++] = p;
    page_next(s);
}

static void on_status(struct httpd_req *req, void *payload)
{
    struct serve *s = payload;
    if (strcmp(req->path, "/api/v1/status") != 0) {
        httpd_respond_text(req, 404, "no such API route; the status is at GET /api/v1/status");
        return;
    }
    if (s->npages == RV_SERVE_PAGE_QUEUE_MAX) {
        httpd_req_add_header(req, "Retry-After", "1");
        httpd_respond_text(req, 503, "too many requests at once; retry");
        return;
    }
    struct page_req *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        httpd_respond_text(req, 503, "out of memory; retry");
        return;
    }
    p->s = s;
    p->req = req;
    p->is_status = true;
    buf_init(&p->body);
    httpd_req_defer(req);
    s->pages[s->npages++] = p;
    page_next(s);
}

/* --- backups: the agent routes' hooks and /api/v1/backups --- */

enum bjob_kind { BJOB_CONFIG, BJOB_RECORDS, BJOB_LIST, BJOB_VERIFY, BJOB_SHOW };

/* One backup request worked on in the thread pool. */
struct bjob {
    struct serve *s;
    struct httpd_req *req;
    uv_work_t work;
    enum bjob_kind kind;
    char cluster[2 * RV_NAME_MAX + 2]; /* "" when none */
    char id[RV_BACKUPS_ID_MAX + 1];
    json_t *body; /* records */
    int status;
    char *text;  /* the answer */
    bool secret; /* wipe text when done */
};

static bool serve_primary(const char *cluster, void *ud)
{
    struct serve *s = ud;
    return s->runners != NULL && runners_has_primary(s->runners, cluster);
}

static char *error_text(const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *t = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return t;
}

static int status_of(int rc)
{
    switch (rc) {
    case RV_ENOTFOUND:
        return 404;
    case RV_EINVAL:
    case RV_ECONFLICT:
        return 409;
    case RV_ENOMEM:
        return 500;
    case RV_EDB:
        return 503;
    default:
        return 502;
    }
}

static void bjob_work(uv_work_t *w)
{
    struct bjob *j = w->data;
    struct backups *b = j->s->backups;
    struct rv_error err = {0};
    json_t *out = NULL;
    size_t n = 0, nlogs = 0;
    bool decoded = false;
    int rc = 0;
    switch (j->kind) {
    case BJOB_CONFIG:
        j->secret = true;
        rc = backups_agent_config(&j->text, b, j->cluster, serve_primary, j->s, &err);
        break;
    case BJOB_RECORDS:
        rc = backups_ingest_logs(&n, &nlogs, b, j->cluster, j->body, &err);
        if (rc == 0)
            out = json_pack("{s:I,s:I}", "accepted", (json_int_t)n, "logs_accepted",
                            (json_int_t)nlogs);
        break;
    case BJOB_SHOW:
        rc = backups_show(&out, b, j->id, &err);
        break;
    case BJOB_LIST:
        rc = backups_list(&out, b, j->cluster[0] ? j->cluster : NULL, &err);
        if (rc == 0)
            out = json_pack("{s:o}", "backups", out);
        break;
    case BJOB_VERIFY:
        rc = backups_verify(&out, &decoded, b, j->id, &err);
        if (rc == 0) {
            json_t *v = json_object_get(out, "verify");
            out = json_pack("{s:s, s:s, s:b, s:O, s:o}", "backup_id", j->id, "result",
                            json_string_value(json_object_get(v, "status")), "chunks_decoded",
                            decoded, "verify", v, "record", out);
        }
        break;
    }
    if (rc != 0) {
        static const char *const what[] = {"configuration of", "records of", "list of",
                                           "verification of", "record and log of"};
        j->status = status_of(rc);
        j->text = error_text(err.msg);
        /* an agent asking before its cluster was applied is routine, and
         * so is asking for an unknown id */
        if ((j->kind != BJOB_CONFIG && j->kind != BJOB_SHOW) || rc != RV_ENOTFOUND)
            log_warn(LOG_C, "backups: %s %s: %s", what[j->kind],
                     j->id[0]        ? j->id
                     : j->cluster[0] ? j->cluster
                                     : "all clusters",
                     err.msg);
        return;
    }
    j->status = 200;
    if (j->text == NULL)
        j->text = out != NULL ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(out);
    if (j->text == NULL) {
        j->status = 500;
        j->text = error_text("out of memory");
    }
}

static void bjob_done(uv_work_t *w, int status)
{
    struct bjob *j = w->data;
    struct serve *s = j->s;
    (void)status;
    if (j->text != NULL)
        httpd_respond(j->req, j->status, "application/json", j->text, strlen(j->text));
    else
        httpd_respond_text(j->req, 500, "out of memory");
    if (j->text != NULL && j->secret)
        crypto_wipe(j->text, strlen(j->text));
    free(j->text);
    json_decref(j->body);
    s->bjobs--;
    if (j->kind == BJOB_VERIFY)
        s->bverifies--;
    free(j);
    maybe_finish(s);
}

/* Queue a job; answers 503 itself when too many run. */
static struct bjob *bjob_new(struct serve *s, struct httpd_req *req, enum bjob_kind kind)
{
    if (s->shutting_down || s->bjobs >= RV_BACKUPS_JOBS_MAX ||
        (kind == BJOB_VERIFY && s->bverifies >= RV_BACKUPS_VERIFY_MAX)) {
        httpd_req_add_header(req, "Retry-After", "1");
        httpd_respond(req, 503, "application/json",
                      "{\"error\":\"too many backup requests at once; retry\"}",
                      strlen("{\"error\":\"too many backup requests at once; retry\"}"));
        return NULL;
    }
    struct bjob *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        httpd_respond_text(req, 503, "out of memory; retry");
        return NULL;
    }
    j->s = s;
    j->req = req;
    j->kind = kind;
    return j;
}

static void bjob_start(struct bjob *j)
{
    struct serve *s = j->s;
    httpd_req_defer(j->req);
    s->bjobs++;
    if (j->kind == BJOB_VERIFY)
        s->bverifies++;
    j->work.data = j;
    if (uv_queue_work(&s->loop, &j->work, bjob_work, bjob_done) != 0) {
        j->status = 503;
        j->text = error_text("cannot queue the work; retry");
        bjob_done(&j->work, 0);
    }
}

static void on_agent_config(struct httpd_req *req, const struct agentapi_agent *who, void *payload)
{
    struct bjob *j = bjob_new(payload, req, BJOB_CONFIG);
    if (j == NULL)
        return;
    snprintf(j->cluster, sizeof(j->cluster), "%s", who->key);
    bjob_start(j);
}

static void on_agent_backups(struct httpd_req *req, const struct agentapi_agent *who, json_t *body,
                             void *payload)
{
    struct bjob *j = bjob_new(payload, req, BJOB_RECORDS);
    if (j == NULL)
        return;
    snprintf(j->cluster, sizeof(j->cluster), "%s", who->key);
    j->body = json_incref(body);
    bjob_start(j);
}

/* "ns/name", both DNS labels. */
static bool cluster_name_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    size_t n = strlen(s);
    if (slash == NULL || slash == s || slash[1] == '\0' || n > 2 * RV_NAME_MAX + 1 ||
        strchr(slash + 1, '/') != NULL || (size_t)(slash - s) > RV_NAME_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-/") == n;
}

/* The value of cluster= in a query (percent-decoded): 1 found, 0 absent,
 * -1 malformed. */
static int query_cluster(char *out, size_t cap, const char *query)
{
    for (const char *q = query; q != NULL && *q != '\0';) {
        size_t n = strcspn(q, "&");
        if (n > 8 && strncmp(q, "cluster=", 8) == 0) {
            size_t o = 0;
            for (size_t i = 8; i < n; i++) {
                int c = (unsigned char)q[i];
                if (c == '%' && i + 2 < n + 1 && crypto_hex_digit(q[i + 1]) >= 0 &&
                    crypto_hex_digit(q[i + 2]) >= 0) {
                    c = crypto_hex_digit(q[i + 1]) * 16 + crypto_hex_digit(q[i + 2]);
                    i += 2;
                } else if (c == '%') {
                    return -1;
                }
                if (o + 1 >= cap)
                    return -1;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return 1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* "/api/v1/backups/<id>": the id (letters, digits, '.', '_', '-'), or
 * false. */
static bool backup_id_path(char id[RV_BACKUPS_ID_MAX + 1], const char *path)
{
    static const char prefix[] = "/api/v1/backups/";
    const char *p = path + sizeof(prefix) - 1;
    size_t n = strlen(path) >= sizeof(prefix) - 1 ? strlen(p) : 0;
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0 || n == 0 || n > RV_BACKUPS_ID_MAX ||
        strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return false;
    memcpy(id, p, n);
    id[n] = '\0';
    return true;
}

static void on_backups_get(struct httpd_req *req, void *payload)
{
    struct serve *s = payload;
    char cluster[2 * RV_NAME_MAX + 2] = "";
    char id[RV_BACKUPS_ID_MAX + 1];
    if (backup_id_path(id, req->path)) {
        struct bjob *j = bjob_new(s, req, BJOB_SHOW);
        if (j == NULL)
            return;
        snprintf(j->id, sizeof(j->id), "%s", id);
        bjob_start(j);
        return;
    }
    if (strcmp(req->path, "/api/v1/backups") != 0) {
        httpd_respond_text(req, 404,
                           "no such API route; backups are listed at GET /api/v1/backups"
                           "[?cluster=NAMESPACE/NAME], shown with their log at GET "
                           "/api/v1/backups/<id> and verified at POST "
                           "/api/v1/backups/<id>/verify");
        return;
    }
    int q = query_cluster(cluster, sizeof(cluster), req->query);
    if (q < 0 || (q == 1 && !cluster_name_ok(cluster))) {
        httpd_respond_text(req, 400,
                           "cluster must be NAMESPACE/NAME, e.g. ?cluster=payments/billing");
        return;
    }
    struct bjob *j = bjob_new(s, req, BJOB_LIST);
    if (j == NULL)
        return;
    snprintf(j->cluster, sizeof(j->cluster), "%s", cluster);
    bjob_start(j);
}

static void on_backups_post(struct httpd_req *req, void *payload)
{
    struct serve *s = payload;
    const char *p = req->path + strlen("/api/v1/backups");
    const char *id = p + 1;
    const char *end = *p == '/' ? strchr(id, '/') : NULL;
    size_t n = end != NULL ? (size_t)(end - id) : 0;
    if (end == NULL || strcmp(end, "/verify") != 0 || n == 0 || n > RV_BACKUPS_ID_MAX ||
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n) {
        httpd_respond_text(req, 404,
                           "no such API route; verify a backup with POST "
                           "/api/v1/backups/<backup id>/verify");
        return;
    }
    struct bjob *j = bjob_new(s, req, BJOB_VERIFY);
    if (j == NULL)
        return;
    memcpy(j->id, id, n);
    j->id[n] = '\0';
    bjob_start(j);
}

/* GET /api/v1/seal-key: the public key `reeve seal --key` takes (public:
 * it can only seal). */
static void on_seal_key(struct httpd_req *req, void *payload)
{
    struct serve *s = payload;
    if (strcmp(req->path, "/api/v1/seal-key") != 0) {
        httpd_respond_text(req, 404, "no such API route; the seal key is at GET /api/v1/seal-key");
        return;
    }
    httpd_respond_text(req, 200, s->seal_pub);
}

/* --- the agent API, providers and runners --- */

static void on_call_async(uv_async_t *a)
{
    struct serve *s = a->data;
    pthread_mutex_lock(&s->call_mu);
    struct loop_call *list = s->calls;
    s->calls = NULL;
    pthread_mutex_unlock(&s->call_mu);
    for (struct loop_call *c = list; c != NULL; c = c->next)
        c->rc = c->fn(s, c);
    pthread_mutex_lock(&s->call_mu);
    for (struct loop_call *c = list, *next; c != NULL; c = next) {
        next = c->next;
        c->done = true; /* c may be gone once this is seen */
    }
    pthread_cond_broadcast(&s->call_cv);
    pthread_mutex_unlock(&s->call_mu);
}

/* From a worker thread: run c->fn on the loop and wait for it. */
static int call_on_loop(struct serve *s, struct loop_call *c)
{
    pthread_mutex_lock(&s->call_mu);
    if (s->calls_closed) {
        pthread_mutex_unlock(&s->call_mu);
        return rv_error_set(&c->err, RV_ECANCELED, true, "reeve is shutting down");
    }
    c->next = s->calls;
    s->calls = c;
    uv_async_send(&s->call_async);
    while (!c->done)
        pthread_cond_wait(&s->call_cv, &s->call_mu);
    pthread_mutex_unlock(&s->call_mu);
    return c->rc;
}

static int issue_on_loop(struct serve *s, struct loop_call *c)
{
    if (s->dcs == NULL || s->api_closing)
        return rv_error_set(&c->err, RV_ECANCELED, true, "the agent API is closed");
    int rc = agentapi_registration_issue_token(c->token, s->dcs, c->namespace_, c->cluster, c->node,
                                               &c->err);
    c->seq = dcs_pending_seq(s->dcs);
    return rc;
}

/* 1 when change c->seq of the DCS has been written, else 0. */
static int durable_on_loop(struct serve *s, struct loop_call *c)
{
    if (s->dcs == NULL || s->api_closing)
        return rv_error_set(&c->err, RV_ECANCELED, true, "the agent API is closed");
    return dcs_durable_seq(s->dcs) >= c->seq ? 1 : 0;
}

static int forget_on_loop(struct serve *s, struct loop_call *c)
{
    char key[3 * RV_NAME_MAX + 32];
    bool deleted = false;
    uint64_t rev = 0;
    if (s->dcs == NULL || s->api_closing)
        return rv_error_set(&c->err, RV_ECANCELED, true, "the agent API is closed");
    snprintf(key, sizeof(key), "/clusters/%s/%s/nodes/%s", c->namespace_, c->cluster, c->node);
    return dcs_delete(&deleted, &rev, s->dcs, key, &c->err);
}

/* Issue the token, then wait until the DCS has written it: an agent may be
 * handed the token by the provider before reeve could crash. */
static int runner_issue_token(const char *token, const char *namespace_, const char *cluster,
                              const char *node, struct rv_error *err, void *ud)
{
    struct loop_call c = {.fn = issue_on_loop,
                          .namespace_ = namespace_,
                          .cluster = cluster,
                          .node = node,
                          .token = token};
    int rc = call_on_loop(ud, &c);
    for (int i = 0; rc == 0 && i < SERVE_DURABLE_POLLS; i++) {
        struct loop_call d = {.fn = durable_on_loop, .seq = c.seq};
        rc = call_on_loop(ud, &d);
        if (rc == 1)
            return 0;
        if (rc < 0) {
            c.err = d.err;
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = SERVE_DURABLE_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == 0)
        rc = rv_error_set(&c.err, RV_ETIMEOUT, true, "the DCS did not write it within %d ms",
                          SERVE_DURABLE_POLLS * SERVE_DURABLE_POLL_MS);
    return rv_error_set(err, rc, c.err.retryable, "cannot issue a registration token for '%s': %s",
                        node, c.err.msg);
}

static int runner_forget_node(const char *namespace_, const char *cluster, const char *node,
                              struct rv_error *err, void *ud)
{
    struct loop_call c = {
        .fn = forget_on_loop, .namespace_ = namespace_, .cluster = cluster, .node = node};
    int rc = call_on_loop(ud, &c);
    if (rc != 0)
        rv_error_set(err, rc, c.err.retryable, "%s", c.err.msg);
    return rc;
}

static int read_on_loop(struct serve *s, struct loop_call *c)
{
    if (s->dcs == NULL || s->api_closing)
        return rv_error_set(&c->err, RV_ECANCELED, true, "the agent API is closed");
    const struct dcs_kv *kv = dcs_get(s->dcs, c->key);
    if (kv == NULL || kv->value == NULL)
        return 0;
    c->value = strndup(kv->value, kv->value_len);
    return c->value != NULL ? 1 : rv_error_set(&c->err, RV_ENOMEM, false, "out of memory");
}

/* One DCS key for a runner (configure_users reads the agent's report). */
static int runner_read_key(char **out_value, const char *key, struct rv_error *err, void *ud)
{
    struct loop_call c = {.fn = read_on_loop, .key = key};
    int rc = call_on_loop(ud, &c);
    *out_value = c.value;
    if (rc < 0)
        rv_error_set(err, rc, c.err.retryable, "%s", c.err.msg);
    return rc;
}

static int write_on_loop(struct serve *s, struct loop_call *c)
{
    if (s->dcs == NULL || s->api_closing)
        return rv_error_set(&c->err, RV_ECANCELED, true, "the agent API is closed");
    return dcs_put(NULL, s->dcs, c->key, c->put, 0, &c->err);
}

/* Put one DCS key for a runner (day-2 operations ask the agents). */
static int runner_write_key(const char *key, const char *value, struct rv_error *err, void *ud)
{
    struct loop_call c = {.fn = write_on_loop, .key = key, .put = value};
    int rc = call_on_loop(ud, &c);
    if (rc < 0)
        rv_error_set(err, rc, c.err.retryable, "%s", c.err.msg);
    return rc;
}

/* Executor workers: a run or check returned; step soon. */
static void on_executor_notify(void *ud)
{
    struct serve *s = ud;
    pthread_mutex_lock(&s->call_mu);
    if (!s->calls_closed)
        uv_async_send(&s->exec_async);
    pthread_mutex_unlock(&s->call_mu);
}

static void on_exec_async(uv_async_t *a)
{
    request_pass(a->data, false);
}

static void on_report(const struct agentapi_report *rep, void *payload)
{
    struct serve *s = payload;
    struct rv_error err = {0};
    if (s->runners == NULL)
        return;
    struct obs_node n = {
        .namespace_ = (char *)rep->namespace_,
        .cluster = (char *)rep->cluster,
        .node = (char *)rep->node,
        .role = strcmp(rep->role, "primary") == 0   ? OBS_ROLE_PRIMARY
                : strcmp(rep->role, "replica") == 0 ? OBS_ROLE_REPLICA
                                                    : OBS_ROLE_UNKNOWN,
        .engine = (char *)rep->engine,
        .version = (char *)rep->version,
        .healthy = rep->healthy,
        .lag_bytes = rep->lag_bytes,
        .lag_transactions_known = rep->lag_transactions >= 0,
        .lag_transactions = rep->lag_transactions,
        .streaming_known = rep->streaming >= 0,
        .streaming = rep->streaming == 1,
        .position = (char *)rep->position,
        .last_report = (int64_t)time(NULL),
        .ttl_s = rep->ttl_s,
    };
    if (runners_node_report(s->runners, &n, &err) != 0)
        log_warn(LOG_C, "report of node '%s' of '%s/%s' dropped: %s", rep->node, rep->namespace_,
                 rep->cluster, err.msg);
}

static int64_t dcs_clock(void *payload)
{
    return (int64_t)uv_now(payload);
}

/* dataDir/secret.key: 32 random bytes, created 0600 on first start. */
static int load_secret_key(uint8_t key[RUNNERS_SECRET_KEY_LEN], const char *data_dir,
                           struct rv_error *err)
{
    struct buf path = BUF_INIT;
    int rc = 0, fd = -1;
    if (buf_printf(&path, "%s/secret.key", data_dir) != 0)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    fd = open(path.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        rc = crypto_random(key, RUNNERS_SECRET_KEY_LEN);
        if (rc == 0 &&
            (write(fd, key, RUNNERS_SECRET_KEY_LEN) != RUNNERS_SECRET_KEY_LEN || fsync(fd) != 0))
            rc = RV_EIO;
        close(fd);
        if (rc != 0) {
            unlink(path.data);
            rc = rv_error_set(err, RV_EIO, false, "cannot create '%s': %s", path.data,
                              strerror(errno));
        }
        goto out;
    }
    if (errno != EEXIST) {
        rc = rv_error_set(err, RV_EIO, false, "cannot create '%s': %s", path.data, strerror(errno));
        goto out;
    }
    fd = open(path.data, O_RDONLY | O_CLOEXEC);
    uint8_t extra;
    if (fd < 0 || read(fd, key, RUNNERS_SECRET_KEY_LEN) != RUNNERS_SECRET_KEY_LEN ||
        read(fd, &extra, 1) != 0)
        rc = rv_error_set(err, RV_EIO, false,
                          "cannot read '%s' (32 bytes expected); restore it from a backup: the "
                          "replication passwords of running clusters derive from it",
                          path.data);
    if (fd >= 0)
        close(fd);
out:
    buf_release(&path);
    return rc;
}

/* "NAME=value" strings: reeve's environment with adds on top. */
static char **provider_env(const struct config_provider *cp)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + cp->nenv + 1, sizeof(*env));
    size_t k = 0;
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        size_t len = strcspn(environ[i], "=");
        for (size_t j = 0; j < cp->nenv && !replaced; j++)
            replaced = strncmp(cp->env[j], environ[i], len + 1) == 0;
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < cp->nenv; j++)
        env[k++] = cp->env[j];
    env[k] = NULL;
    return env;
}

static int start_providers(struct serve *s, struct rv_error *err)
{
    const struct config *cfg = s->cfg;
    int rc = 0;
    s->providers = calloc(cfg->nproviders, sizeof(*s->providers));
    if (s->providers == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    for (size_t i = 0; i < cfg->nproviders && rc == 0; i++) {
        const struct config_provider *cp = &cfg->providers[i];
        char self[4096], path[4200];
        char *argv_default[2] = {path, NULL};
        char *const *argv = cp->argv;
        if (argv == NULL) {
            ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
            if (strcmp(cp->name, "local") != 0 || n <= 0)
                return rv_error_set(err, RV_EINVAL, false,
                                    "provider '%s' has no command; set providers[].command in "
                                    "'%s'",
                                    cp->name, cfg->path);
            self[n] = '\0';
            snprintf(path, sizeof(path), "%s/reeve-provider-local", dirname(self));
            argv = argv_default;
        }
        char **env = cp->nenv > 0 ? provider_env(cp) : NULL;
        if (cp->nenv > 0 && env == NULL)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory");
        struct provider_config pc = {.name = cp->name, .argv = argv, .env = env};
        rc = provider_start(&s->providers[i], &pc, err);
        free(env);
        if (rc != 0)
            break;
        s->nproviders++;
        rc = runners_add_provider(s->runners, cp->name, s->providers[i], err);
    }
    return rc;
}

static int start_applying(struct serve *s, struct rv_error *err)
{
    const struct config *cfg = s->cfg;
    struct runners_opts ro = {
        .agent_url = s->agent_url,
        .agent_ttl_ms = cfg->agent.ttl_ms,
        .agent_tick_ms = cfg->agent.tick_ms,
        .issue_token = runner_issue_token,
        .forget_node = runner_forget_node,
        .read_key = runner_read_key,
        .write_key = runner_write_key,
        .backups = s->backups,
        .ud = s,
    };
    int rc = load_secret_key(ro.secret_key, cfg->data_dir, err);
    if (rc == 0)
        rc = runners_new(&s->runners, &ro, err);
    crypto_wipe(ro.secret_key, sizeof(ro.secret_key));
    if (rc != 0 || cfg->nproviders == 0)
        return rc;
    rc = start_providers(s, err);
    if (rc != 0)
        return rc;
    /* node reports come back within a TTL of a restart */
    struct reconcile_apply ra = {.runners = s->runners,
                                 .grace_s = 2 * ((int64_t)cfg->agent.ttl_ms + 999) / 1000};
    executor_opts_init(&ra.executor);
    ra.executor.max_concurrent = cfg->limits.max_concurrent;
    ra.executor.max_per_provider = cfg->limits.per_provider;
    ra.executor.max_per_cluster = cfg->limits.per_cluster;
    ra.executor.notify = on_executor_notify;
    ra.executor.notify_ud = s;
    rc = reconcile_apply_enable(s->rec, &ra, err);
    if (rc == 0)
        s->applying = true;
    return rc;
}

/* --- setup --- */

static int lock_data_dir(struct serve *s, struct rv_error *err)
{
    struct buf path = BUF_INIT;
    int rc = 0;
    if (buf_printf(&path, "%s/lock", s->cfg->data_dir) != 0)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    s->lock_fd = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot open '%s': %s", path.data, strerror(errno));
    else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
        rc = rv_error_set(err, RV_EBUSY, false,
                          "dataDir '%s' is in use by another reeve serve; stop it, or give this "
                          "one its own dataDir",
                          s->cfg->data_dir);
    buf_release(&path);
    return rc;
}

int serve_new(struct serve **out, const struct config *cfg, const struct serve_options *opt,
              struct rv_error *err)
{
    struct serve *s = calloc(1, sizeof(*s));
    struct buf url = BUF_INIT;
    int rc = 0;

    *out = NULL;
    if (s == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    s->cfg = cfg;
    s->lock_fd = -1;
    atomic_init(&s->cancel, false);
    rc = mkdir_p(cfg->data_dir, err);
    if (rc == 0)
        rc = lock_data_dir(s, err);
    /* refuses a dataDir holding only one half of the pair */
    if (rc == 0)
        rc = seal_keys_load_or_create(&s->seal, cfg->data_dir, err);
    if (rc == 0 && seal_pub_format(&s->seal, s->seal_pub, sizeof(s->seal_pub)) != 0)
        rc = rv_error_set(err, RV_EINTERNAL, false, "cannot format the seal public key");
    if (rc != 0)
        goto out;
    if (uv_loop_init(&s->loop) != 0) {
        rc = rv_error_set(err, RV_EIO, false, "cannot create the event loop");
        goto out;
    }
    s->loop_inited = true;

    struct httpd_config hc = {.listen = cfg->listen};
    rc = httpd_new(&s->httpd, &s->loop, &hc, err);
    if (rc != 0)
        goto out;
    s->port = httpd_port(s->httpd);
    if (cfg->public_url != NULL) {
        rc = buf_puts(&url, cfg->public_url);
    } else {
        const char *colon = strrchr(cfg->listen, ':');
        rc = buf_printf(&url, "http://%.*s:%u", (int)(colon - cfg->listen), cfg->listen,
                        (unsigned)s->port);
    }
    if (rc != 0 || (s->public_url = buf_detach(&url)) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = write_port_file(s, err);
    if (rc != 0)
        goto out;

    rc = reconcile_new(&s->rec, cfg, s->public_url, err);
    if (rc != 0)
        goto out;
    {
        struct buf dbp = BUF_INIT;
        struct db_options dopt;
        db_options_init(&dopt);
        dopt.create = false;
        if (buf_printf(&dbp, "%s/state.db", cfg->data_dir) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        else
            rc = db_open(&s->pages_db, dbp.data, &dopt, err);
        buf_release(&dbp);
        if (rc != 0)
            goto out;
    }

    if (pthread_mutex_init(&s->call_mu, NULL) != 0 || pthread_cond_init(&s->call_cv, NULL) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "cannot create a mutex");
        goto out;
    }
    s->call_mu_inited = true;
    uv_async_init(&s->loop, &s->exec_async, on_exec_async);
    uv_async_init(&s->loop, &s->call_async, on_call_async);
    s->exec_async.data = s->call_async.data = s;
    s->asyncs_inited = true;
    s->agent_url = strdup(cfg->agent_url != NULL ? cfg->agent_url : s->public_url);
    if (s->agent_url == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    {
        struct buf dcsp = BUF_INIT;
        if (buf_printf(&dcsp, "%s/dcs.db", cfg->data_dir) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        else
            rc = dcs_open(&s->dcs, dcsp.data, dcs_clock, &s->loop, err);
        buf_release(&dcsp);
        if (rc != 0)
            goto out;
    }
    rc = agentapi_new(&s->api, &s->loop, s->httpd, s->dcs, on_report, s, err);
    if (rc != 0)
        goto out;
    {
        struct buf dbp = BUF_INIT;
        if (buf_printf(&dbp, "%s/state.db", cfg->data_dir) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        else
            rc = backups_open(&s->backups, dbp.data, cfg, err);
        buf_release(&dbp);
        if (rc != 0)
            goto out;
        backups_set_seal_keys(s->backups, &s->seal);
        struct agentapi_backup_hooks hooks = {
            .config = on_agent_config, .records = on_agent_backups, .payload = s};
        agentapi_set_backup_hooks(s->api, &hooks);
    }
    rc = start_applying(s, err);
    if (rc != 0)
        goto out;

    if ((rc = httpd_route(s->httpd, "GET", "/healthz", on_healthz, s)) != 0 ||
        (rc = httpd_route(s->httpd, "GET", "/metrics", on_metrics, s)) != 0 ||
        (rc = httpd_route(s->httpd, "GET", "/api/v1/status", on_status, s)) != 0 ||
        (rc = httpd_route(s->httpd, "GET", "/plans", on_plans, s)) != 0 ||
        (rc = httpd_route(s->httpd, "GET", "/api/v1/backups", on_backups_get, s)) != 0 ||
        (rc = httpd_route(s->httpd, "POST", "/api/v1/backups", on_backups_post, s)) != 0 ||
        (rc = httpd_route(s->httpd, "GET", "/api/v1/seal-key", on_seal_key, s)) != 0) {
        rc = rv_error_set(err, rc, false, "cannot add the HTTP routes: %s", rv_strerror(rc));
        goto out;
    }
    if (cfg->forge.kind != SOURCE_FORGE_NONE && cfg->forge.webhook_secret != NULL) {
        struct webhook_route_config wc = {
            .secret = cfg->forge.webhook_secret,
            .on_event = on_webhook,
            .payload = s,
        };
        rc = webhook_forge_parse(&wc.forge, config_forge_name(cfg));
        if (rc == 0) {
            snprintf(s->hook_path, sizeof(s->hook_path), "/hooks/%s", config_forge_name(cfg));
            rc = webhook_route_install(&s->hook, s->httpd, s->hook_path, &wc, err);
        }
        if (rc != 0)
            goto out;
    }

    uv_timer_init(&s->loop, &s->base_timer);
    uv_timer_init(&s->loop, &s->poll_timer);
    uv_timer_init(&s->loop, &s->outbox_timer);
    uv_timer_init(&s->loop, &s->shutdown_timer);
    uv_async_init(&s->loop, &s->stop_async, on_stop_async);
    s->base_timer.data = s->poll_timer.data = s->outbox_timer.data = s;
    s->shutdown_timer.data = s->stop_async.data = s;
    s->handles_inited = true;
    if (opt != NULL && opt->handle_signals) {
        static const int signums[3] = {SIGINT, SIGTERM, SIGHUP};
        for (int i = 0; i < 3; i++) {
            uv_signal_init(&s->loop, &s->sig[i]);
            s->sig[i].data = s;
            uv_signal_start(&s->sig[i], on_signal, signums[i]);
        }
        s->signals = true;
    }
    *out = s;
    s = NULL;
out:
    buf_release(&url);
    serve_free(s);
    return rc;
}

uint16_t serve_port(const struct serve *s)
{
    return s->port;
}

const char *serve_public_url(const struct serve *s)
{
    return s->public_url;
}

int serve_run(struct serve *s)
{
    const struct config *c = s->cfg;
    uint64_t base_ms = (uint64_t)c->ticks.base_s * 1000u;
    log_info(LOG_C, "serving on http://%s (port %u); status links under %s", c->listen,
             (unsigned)s->port, s->public_url);
    log_info(LOG_C, "repository %s, branch '%s', fetching %s; forge %s%s%s; %s%s",
             c->repository.url, c->repository.branch,
             c->repository.poll_interval_s ? "periodically" : "at start and on webhooks only",
             config_forge_name(c), c->forge.repository ? " " : "",
             c->forge.repository ? c->forge.repository : "",
             s->hook ? "webhooks at POST " : "no webhooks", s->hook ? s->hook_path : "");
    if (c->repository.poll_interval_s)
        log_info(LOG_C, "fetch every %us, base tick %us", c->repository.poll_interval_s,
                 c->ticks.base_s);
    uv_timer_start(&s->base_timer, on_base_tick, base_ms, base_ms);
    if (c->repository.poll_interval_s > 0) {
        uint64_t poll_ms = (uint64_t)c->repository.poll_interval_s * 1000u;
        uv_timer_start(&s->poll_timer, on_poll_tick, poll_ms, poll_ms);
    }
    request_pass(s, true);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (s->abandoned)
        return rv_error_set(NULL, RV_ETIMEOUT, false, "abandoned");
    log_info(LOG_C, "stopped");
    return 0;
}

void serve_stop(struct serve *s)
{
    uv_async_send(&s->stop_async);
}

static void drain(uv_handle_t *h, void *arg)
{
    close_handle(arg, h);
}

void serve_free(struct serve *s)
{
    if (s == NULL)
        return;
    if (s->abandoned) {
        /* A worker still uses the database, the mirror and this struct:
         * leave them to the process's exit. */
        return;
    }
    if (s->loop_inited) {
        if (s->handles_inited) {
            close_handle(s, (uv_handle_t *)&s->base_timer);
            close_handle(s, (uv_handle_t *)&s->poll_timer);
            close_handle(s, (uv_handle_t *)&s->outbox_timer);
            close_handle(s, (uv_handle_t *)&s->shutdown_timer);
            close_handle(s, (uv_handle_t *)&s->stop_async);
            for (int i = 0; s->signals && i < 3; i++)
                close_handle(s, (uv_handle_t *)&s->sig[i]);
        }
        calls_close(s);
        if (s->runners != NULL)
            runners_stop(s->runners);
        if (s->asyncs_inited) {
            close_handle(s, (uv_handle_t *)&s->exec_async);
            close_handle(s, (uv_handle_t *)&s->call_async);
        }
        if (s->api != NULL && !s->api_closing) {
            s->api_closing = true;
            agentapi_close(s->api, on_api_closed, s);
        } else if (s->httpd != NULL) {
            httpd_close(s->httpd, on_httpd_closed, s);
        }
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_walk(&s->loop, drain, s);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0)
            log_warn(LOG_C, "event loop closed with handles still open");
    }
    webhook_route_free(s->hook);
    /* the executor's runs use the providers and the runners: it goes first */
    reconcile_apply_disable(s->rec);
    for (size_t i = 0; i < s->nproviders; i++)
        provider_stop(s->providers[i]);
    free(s->providers);
    runners_free(s->runners);
    backups_free(s->backups);
    seal_keys_wipe(&s->seal);
    reconcile_free(s->rec);
    agentapi_free(s->api);
    dcs_free(s->dcs);
    free(s->agent_url);
    if (s->call_mu_inited) {
        pthread_mutex_destroy(&s->call_mu);
        pthread_cond_destroy(&s->call_cv);
    }
    db_free(s->pages_db);
    free(s->pending);
    free(s->events);
    free(s->public_url);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}
