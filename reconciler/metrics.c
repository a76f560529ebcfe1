/* metrics.c - Prometheus text exposition of reeve serve's counters. */
#include "metrics.h"

static const double bounds[METRICS_NBUCKETS] = METRICS_BUCKETS_INIT;

void metrics_observe(struct metrics_histogram *h, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    for (int i = 0; i < METRICS_NBUCKETS; i++) {
        if (seconds <= bounds[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

static int counter(struct buf *out, const char *name, const char *help, uint64_t v)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                      (unsigned long long)v);
}

static int histogram(struct buf *out, const char *name, const char *help,
                     const struct metrics_histogram *h)
{
    uint64_t cum = 0;
    int rc = buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < METRICS_NBUCKETS && rc == 0; i++) {
        cum += h->buckets[i];
        rc = buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                        (unsigned long long)cum);
    }
    if (rc == 0)
        rc = buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)h->count, name, h->sum, name,
                        (unsigned long long)h->count);
    return rc;
}

int metrics_render(struct buf *out, const struct metrics *m)
{
    const struct metrics_webhooks *w = &m->webhooks;
    int rc = counter(out, "reeve_reconcile_passes_total",
                     "Reconcile passes run (fetch, reconcile changed refs, post statuses).",
                     m->reconcile_passes);
    rc = rc ? rc
            : histogram(out, "reeve_reconcile_duration_seconds",
                        "Time a pass spent reconciling refs (loading, validating, planning, "
                        "storing), without the fetch and the status posts.",
                        &m->reconcile_duration);
    rc = rc ? rc
            : histogram(out, "reeve_git_fetch_duration_seconds",
                        "Time of fetches from the spec repository, failed ones included.",
                        &m->fetch_duration);
    rc = rc ? rc
            : counter(out, "reeve_git_fetch_failures_total", "Fetches that failed.",
                      m->fetch_failures);
    rc = rc ? rc
            : counter(out, "reeve_statuses_posted_total", "Commit statuses the forge accepted.",
                      m->statuses_posted);
    rc = rc ? rc
            : counter(out, "reeve_statuses_failed_total",
                      "Commit statuses given up (refused by the forge, or retried too long).",
                      m->statuses_failed);
    rc = rc ? rc
            : buf_printf(out,
                         "# HELP reeve_webhooks_total Webhook deliveries by outcome.\n"
                         "# TYPE reeve_webhooks_total counter\n"
                         "reeve_webhooks_total{result=\"accepted\"} %llu\n"
                         "reeve_webhooks_total{result=\"rejected\"} %llu\n"
                         "reeve_webhooks_total{result=\"duplicate\"} %llu\n"
                         "reeve_webhooks_total{result=\"ignored\"} %llu\n"
                         "reeve_webhooks_total{result=\"malformed\"} %llu\n"
                         "reeve_webhooks_total{result=\"busy\"} %llu\n",
                         (unsigned long long)w->accepted, (unsigned long long)w->rejected,
                         (unsigned long long)w->duplicate, (unsigned long long)w->ignored,
                         (unsigned long long)w->malformed, (unsigned long long)w->busy);
    rc = rc ? rc
            : buf_printf(out,
                         "# HELP reeve_clusters_desired Clusters declared at the tip of the main "
                         "branch.\n# TYPE reeve_clusters_desired gauge\nreeve_clusters_desired "
                         "%llu\n",
                         (unsigned long long)m->clusters_desired);
    return rc;
}
