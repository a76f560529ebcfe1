/* cron.h - standard five-field cron expressions, evaluated in UTC.
 *
 *   minute hour day-of-month month day-of-week
 *
 * Each field is '*', a number, a range a-b, a list of these separated by
 * ',', any of them with a step "/n" ("*" + "/15", "1-30/2"). Months accept
 * jan..dec and days sun..sat (case-insensitive); day-of-week 0 and 7 are
 * both Sunday. As in every cron since Vixie's: when both day-of-month and
 * day-of-week are restricted (neither starts with '*'), a day matches when
 * EITHER matches; otherwise only the restricted one counts. The shorthands
 * @yearly @annually @monthly @weekly @daily @midnight @hourly are accepted.
 */
#ifndef REEVE_CRON_H
#define REEVE_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct cron {
    uint64_t minutes; /* bit m: minute m (0-59) */
    uint32_t hours;   /* bit h (0-23) */
    uint32_t mdays;   /* bit d (1-31) */
    uint16_t months;  /* bit m (1-12) */
    uint8_t wdays;    /* bit d (0-6, Sunday 0) */
    bool mday_star;   /* day-of-month field starts with '*' */
    bool wday_star;   /* day-of-week field starts with '*' */
};

/* Parse expr; RV_EPARSE with the field named in err. */
int cron_parse(struct cron *c, const char *expr, struct rv_error *err);
/* The first firing time strictly after `after` (seconds since the epoch,
 * UTC), on a whole minute. RV_ENOTFOUND when the expression never fires
 * within RV_CRON_HORIZON_YEARS (e.g. "0 0 30 2 *"). */
int cron_next(int64_t *out, const struct cron *c, int64_t after);

#endif
