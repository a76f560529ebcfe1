/* test_cron.c - cron expressions: parsing, and next firing times including
 * month ends, leap years and the day-of-month / day-of-week rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cron.h"

/* "2026-11-21T08:00:00Z" -> epoch seconds. */
static int64_t at(const char *s)
{
    struct tm t = {0};
    sscanf(s, "%d-%d-%dT%d:%d:%d", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour, &t.tm_min,
           &t.tm_sec);
    t.tm_year -= 1900;
    t.tm_mon -= 1;
    return (int64_t)timegm(&t);
}

static void expect_next(const char *expr, const char *after, const char *want)
{
    struct cron c;
    struct rv_error err = {0};
    int64_t next = 0;
    int rc = cron_parse(&c, expr, &err);
    if (rc != 0)
        fail_msg("parse '%s': %s", expr, err.msg);
    assert_int_equal(cron_next(&next, &c, at(after)), 0);
    if (next != at(want)) {
        char got[32];
        time_t tt = (time_t)next;
        struct tm g;
        gmtime_r(&tt, &g);
        strftime(got, sizeof(got), "%Y-%m-%dT%H:%M:%S", &g);
        fail_msg("'%s' after %s: got %s, want %s", expr, after, got, want);
    }
}

static void test_basic(void **state)
{
    (void)state;
    expect_next("0 2 * * *", "2026-11-21T08:00:00", "2026-11-22T02:00:00");
    expect_next("0 2 * * *", "2026-11-21T01:59:59", "2026-11-21T02:00:00");
    /* strictly after: a time on the schedule gives the next one */
    expect_next("0 2 * * *", "2026-11-21T02:00:00", "2026-11-22T02:00:00");
    expect_next("*/15 * * * *", "2026-11-21T08:07:30", "2026-11-21T08:15:00");
    expect_next("* * * * *", "2026-11-21T08:07:30", "2026-11-21T08:08:00");
    expect_next("5,35 9-10 * * *", "2026-11-21T10:35:00", "2026-11-22T09:05:00");
    expect_next("1-30/10 * * * *", "2026-11-21T08:22:00", "2026-11-21T09:01:00");
    expect_next("@hourly", "2026-11-21T08:07:00", "2026-11-21T09:00:00");
    expect_next("@daily", "2026-12-31T23:59:00", "2027-01-01T00:00:00");
}

static void test_month_edges(void **state)
{
    (void)state;
    /* the 31st skips months without one */
    expect_next("0 0 31 * *", "2026-04-01T00:00:00", "2026-05-31T00:00:00");
    /* Feb 29 only in leap years */
    expect_next("0 12 29 2 *", "2026-03-01T00:00:00", "2028-02-29T12:00:00");
    /* year rollover and month names */
    expect_next("30 6 1 jan *", "2026-11-21T00:00:00", "2027-01-01T06:30:00");
    expect_next("0 0 1 */3 *", "2026-11-21T00:00:00", "2027-01-01T00:00:00");
    expect_next("0 0 1 dec *", "2026-11-21T00:00:00", "2026-12-01T00:00:00");
}

static void test_weekdays(void **state)
{
    (void)state;
    /* 2026-11-21 is a Saturday */
    expect_next("0 3 * * 1", "2026-11-21T08:00:00", "2026-11-23T03:00:00");
    expect_next("0 3 * * 0", "2026-11-21T08:00:00", "2026-11-22T03:00:00");
    expect_next("0 3 * * 7", "2026-11-21T08:00:00", "2026-11-22T03:00:00"); /* 7 = Sunday */
    expect_next("0 3 * * mon-fri", "2026-11-21T08:00:00", "2026-11-23T03:00:00");
    expect_next("0 3 * * SAT", "2026-11-21T02:00:00", "2026-11-21T03:00:00");
    /* both restricted: either matches (the 1st, or any Friday) */
    expect_next("0 0 1 * 5", "2026-11-21T00:00:00", "2026-11-27T00:00:00");
    expect_next("0 0 1 * 5", "2026-11-27T00:00:00", "2026-12-01T00:00:00");
    /* day-of-month '*' with a weekday: only the weekday counts */
    expect_next("0 0 * * 5", "2026-11-27T00:00:00", "2026-12-04T00:00:00");
    /* Friday the 13th is not required: a "*"-step day field is still '*' */
    expect_next("0 0 */1 * 5", "2026-11-27T00:00:00", "2026-12-04T00:00:00");
}

static void test_never_and_errors(void **state)
{
    (void)state;
    struct cron c;
    struct rv_error err = {0};
    int64_t next = 0;
    assert_int_equal(cron_parse(&c, "0 0 30 2 *", &err), 0);
    assert_int_equal(cron_next(&next, &c, at("2026-01-01T00:00:00")), RV_ENOTFOUND);
    static const char *const bad[] = {
        "",          "* * * *",      "* * * * * *", "60 * * * *",  "* 24 * * *",
        "* * 0 * *", "* * * 13 *",   "* * * * 8",   "*/0 * * * *", "5-1 * * * *",
        "a * * * *", "1,,2 * * * *", "@sometimes",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (cron_parse(&c, bad[i], &err) != RV_EPARSE)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(strstr(err.msg, "cron") != NULL);
    }
    assert_int_equal(cron_parse(&c, "0 2 * * *", &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_month_edges),
        cmocka_unit_test(test_weekdays),
        cmocka_unit_test(test_never_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
