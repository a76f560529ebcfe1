/* metrics.h - the counters `reeve serve` exports at GET /metrics, in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * The struct is plain data owned by the loop thread: the reconcile worker
 * reports its numbers in its result, and the loop adds them here.
 */
#ifndef REEVE_METRICS_H
#define REEVE_METRICS_H

#include <stdint.h>

#include "buf.h"

/* Upper bounds (seconds) of the duration histograms' buckets; +Inf is added. */
#define METRICS_BUCKETS_INIT                                                                       \
    {                                                                                              \
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60                            \
    }
#define METRICS_NBUCKETS 13

struct metrics_histogram {
    uint64_t buckets[METRICS_NBUCKETS]; /* observations <= bound (not cumulative) */
    uint64_t count;
    double sum;
};

void metrics_observe(struct metrics_histogram *h, double seconds);

struct metrics_webhooks {
    uint64_t accepted, rejected, duplicate, ignored, malformed, busy;
};

struct metrics {
    uint64_t reconcile_passes;
    struct metrics_histogram reconcile_duration;
    struct metrics_histogram fetch_duration;
    uint64_t fetch_failures;
    uint64_t statuses_posted;
    uint64_t statuses_failed;
    struct metrics_webhooks webhooks;
    uint64_t clusters_desired;
};

/* Append the exposition text to out. RV_ENOMEM. */
int metrics_render(struct buf *out, const struct metrics *m);

#endif
