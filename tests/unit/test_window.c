/* test_window.c - maintenance windows and pause files (reconciler/window.c):
 * the grammar the schema accepts, open/closed and the next opening across
 * midnight and the end of the week, durations, which actions wait, the
 * hold decision on a spec set, and the text of a pause file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "window.h"

/* Unix seconds of a UTC date and time (days from the civil calendar). */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    y -= mo <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return days * 86400 + h * 3600 + mi * 60 + s;
}

static void test_utc_helper(void **state)
{
    (void)state;
    assert_int_equal(utc(1970, 1, 1, 0, 0, 0), 0);
    assert_int_equal(utc(2026, 11, 22, 2, 0, 0), 1795312800); /* a Sunday */
    assert_int_equal(utc(1969, 12, 31, 23, 59, 59), -1);
}

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int day, from, minutes;
    } good[] = {
        {"Sun 02:00-04:00", 6, 120, 120},   {"Mon 00:00-23:59", 0, 0, 1439},
        {"Daily 22:00-23:30", 7, 1320, 90}, {"Sat 23:00-01:00", 5, 1380, 120},
        {"Wed 23:00-00:00", 2, 1380, 60},   {"Fri 00:01-00:00", 4, 1, 1439},
    };
    static const char *const bad[] = {
        "Sunday 02:00-04:00", /* the schema's day names only */
        "Sun 2am-4am",        "Sun 24:00-25:30",
        "Sun 02:60-04:00",    "Mon-Fri 22:00-23:30", /* no day ranges in the schema */
        "sun 02:00-04:00",                           /* case matters, as in the schema's pattern */
        "Sun 02:00-04:00 ",   "Sun  02:00-04:00",
        "Sun 02:00",          "",
    };
    struct window w;
    struct rv_error err;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (window_parse(&w, good[i].text, &err) != 0)
            fail_msg("'%s': %s", good[i].text, err.msg);
        assert_int_equal(w.day, good[i].day);
        assert_int_equal(w.from, good[i].from);
        assert_int_equal(w.minutes, good[i].minutes);
        assert_string_equal(w.text, good[i].text);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (window_parse(&w, bad[i], &err) != RV_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err.msg, "such as 'Sun 02:00-04:00'"));
    }
    memset(&err, 0, sizeof(err));
    assert_int_equal(window_parse(&w, "Sun 02:00-02:00", &err), RV_EINVAL);
    assert_string_equal(err.msg,
                        "maintenance window 'Sun 02:00-02:00' ends when it starts; give it a "
                        "length");
}

/* open at `at`, and the next opening from there */
struct open_case {
    const char *window;
    int64_t at;
    bool open;
    int64_t next;
};

static void test_open_and_next(void **state)
{
    (void)state;
    const struct open_case cases[] = {
        /* the start is in, the end is out */
        {"Sun 02:00-04:00", utc(2026, 11, 22, 1, 59, 59), false, utc(2026, 11, 22, 2, 0, 0)},
        {"Sun 02:00-04:00", utc(2026, 11, 22, 2, 0, 0), true, utc(2026, 11, 22, 2, 0, 0)},
        {"Sun 02:00-04:00", utc(2026, 11, 22, 3, 59, 59), true, utc(2026, 11, 22, 3, 59, 59)},
        {"Sun 02:00-04:00", utc(2026, 11, 22, 4, 0, 0), false, utc(2026, 11, 29, 2, 0, 0)},
        {"Sun 02:00-04:00", utc(2026, 11, 21, 22, 48, 0), false, utc(2026, 11, 22, 2, 0, 0)},
        /* the other days of the week are closed */
        {"Sun 02:00-04:00", utc(2026, 11, 23, 3, 0, 0), false, utc(2026, 11, 29, 2, 0, 0)},
        /* week wrap: from Sunday evening to Monday's window */
        {"Mon 01:00-02:00", utc(2026, 11, 22, 23, 0, 0), false, utc(2026, 11, 23, 1, 0, 0)},
        {"Mon 01:00-02:00", utc(2026, 11, 23, 2, 0, 0), false, utc(2026, 11, 30, 1, 0, 0)},
        /* crossing midnight, and the week's end (Sunday into Monday) */
        {"Sun 23:00-01:00", utc(2026, 11, 22, 22, 59, 59), false, utc(2026, 11, 22, 23, 0, 0)},
        {"Sun 23:00-01:00", utc(2026, 11, 22, 23, 30, 0), true, utc(2026, 11, 22, 23, 30, 0)},
        {"Sun 23:00-01:00", utc(2026, 11, 23, 0, 30, 0), true, utc(2026, 11, 23, 0, 30, 0)},
        {"Sun 23:00-01:00", utc(2026, 11, 23, 1, 0, 0), false, utc(2026, 11, 29, 23, 0, 0)},
        {"Sun 23:00-01:00", utc(2026, 11, 22, 0, 30, 0), false, utc(2026, 11, 22, 23, 0, 0)},
        {"Sat 23:00-01:00", utc(2026, 11, 22, 0, 59, 0), true, utc(2026, 11, 22, 0, 59, 0)},
        /* daily */
        {"Daily 22:00-23:30", utc(2026, 11, 18, 23, 45, 0), false, utc(2026, 11, 19, 22, 0, 0)},
        {"Daily 22:00-23:30", utc(2026, 11, 18, 22, 15, 0), true, utc(2026, 11, 18, 22, 15, 0)},
        {"Daily 23:30-00:30", utc(2026, 11, 19, 0, 15, 0), true, utc(2026, 11, 19, 0, 15, 0)},
        {"Daily 23:30-00:30", utc(2026, 11, 19, 0, 30, 0), false, utc(2026, 11, 19, 23, 30, 0)},
        /* before 1970 (Wednesday 1969-12-31) */
        {"Wed 23:00-00:00", -1, true, -1},
        {"Thu 00:00-01:00", -1, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct window w;
        struct rv_error err = {0};
        assert_int_equal(window_parse(&w, cases[i].window, &err), 0);
        if (window_is_open(&w, cases[i].at) != cases[i].open)
            fail_msg("case %zu: '%s' at %lld: want %s", i, cases[i].window, (long long)cases[i].at,
                     cases[i].open ? "open" : "closed");
        if (window_next_open(&w, cases[i].at) != cases[i].next)
            fail_msg("case %zu: '%s' at %lld: next opening %lld, want %lld", i, cases[i].window,
                     (long long)cases[i].at, (long long)window_next_open(&w, cases[i].at),
                     (long long)cases[i].next);
    }
}

static void test_duration(void **state)
{
    (void)state;
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {0, "0m"},
        {1, "1m"},
        {60, "1m"},
        {61, "2m"},
        {3 * 3600 + 12 * 60, "3h12m"},
        {86400, "1d0h0m"},
        {312800, "3d14h54m"},
        {-5, "0m"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        window_duration(out, sizeof(out), cases[i].s);
        assert_string_equal(out, cases[i].want);
    }
}

static void test_disruptive_kinds(void **state)
{
    (void)state;
    static const char *const wait[] = {"restart_node", "resize", "upgrade_replica", "switchover",
                                       "upgrade_node"};
    static const char *const go[] = {"remove_replica",
                                     "provision_instance",
                                     "bootstrap_primary",
                                     "seed_from_backup",
                                     "add_replica",
                                     "configure_parameters",
                                     "configure_users",
                                     "configure_backup",
                                     "final_backup",
                                     "decommission",
                                     "ready"};
    for (size_t i = 0; i < sizeof(wait) / sizeof(wait[0]); i++)
        assert_true(window_kind_disruptive(wait[i]));
    for (size_t i = 0; i < sizeof(go) / sizeof(go[0]); i++)
        assert_false(window_kind_disruptive(go[i]));
}

static void test_hold(void **state)
{
    (void)state;
    struct spec_cluster c[3];
    struct spec_cluster *ptrs[3] = {&c[0], &c[1], &c[2]};
    struct spec_set set = {.clusters = ptrs, .nclusters = 3};
    memset(c, 0, sizeof(c));
    c[0].namespace_ = "payments";
    c[0].name = "billing";
    c[0].maintenance.window = "Sun 02:00-04:00";
    c[1].namespace_ = "payments";
    c[1].name = "ledger"; /* no window: any time */
    c[2].namespace_ = "pay";
    c[2].name = "billing";
    c[2].maintenance.window = "Sun 2am"; /* not validated */
    char why[256];
    int64_t until = 0;
    int64_t sat = utc(2026, 11, 21, 22, 48, 0), sun = utc(2026, 11, 22, 2, 30, 0);

    assert_true(window_hold(why, sizeof(why), &until, &set, "payments/billing", "switchover", sat));
    assert_string_equal(why, "waiting for maintenance window Sun 02:00-04:00");
    assert_int_equal(until, utc(2026, 11, 22, 2, 0, 0));
    /* inside the window it runs */
    assert_false(
        window_hold(why, sizeof(why), &until, &set, "payments/billing", "switchover", sun));
    /* not disruptive: never held */
    assert_false(
        window_hold(why, sizeof(why), &until, &set, "payments/billing", "add_replica", sat));
    assert_false(
        window_hold(why, sizeof(why), &until, &set, "payments/billing", "configure_users", sat));
    /* no window, or no spec (deleted) */
    assert_false(
        window_hold(why, sizeof(why), &until, &set, "payments/ledger", "restart_node", sat));
    assert_false(window_hold(why, sizeof(why), &until, &set, "payments/gone", "resize", sat));
    /* an unreadable window holds, and says so */
    assert_true(window_hold(why, sizeof(why), &until, &set, "pay/billing", "resize", sun));
    assert_non_null(strstr(why, "cannot read maintenance window 'Sun 2am'"));
    assert_int_equal(until, 0);
}

static void test_pause_describe(void **state)
{
    (void)state;
    struct window_pause p;
    window_pause_describe(&p, "payments", NULL, 0);
    assert_string_equal(p.namespace_, "payments");
    assert_string_equal(p.why, "paused: clusters/payments/PAUSED");
    window_pause_describe(&p, "payments", "\n \n", 3);
    assert_string_equal(p.why, "paused: clusters/payments/PAUSED");
    const char *two = "  quarter-end freeze (INC-42)\t\r\nsecond line is not shown\n";
    window_pause_describe(&p, "payments", two, strlen(two));
    assert_string_equal(p.why, "paused: clusters/payments/PAUSED (quarter-end freeze (INC-42))");
    const char *ctl = "a\x1b[31mb\x7f";
    window_pause_describe(&p, "search", ctl, strlen(ctl));
    assert_string_equal(p.why, "paused: clusters/search/PAUSED (a[31mb)");

    char longer[300];
    memset(longer, 'x', sizeof(longer));
    window_pause_describe(&p, "payments", longer, sizeof(longer));
    char want[256];
    snprintf(want, sizeof(want), "paused: clusters/payments/PAUSED (%.*s...)",
             RV_WINDOW_PAUSE_REASON_MAX - 3, longer);
    assert_string_equal(p.why, want);
    /* a cut never splits a UTF-8 character */
    char utf[300];
    size_t n = 0;
    while (n + 2 <= sizeof(utf)) {
        utf[n++] = (char)0xc3;
        utf[n++] = (char)0xa9; /* é */
    }
    window_pause_describe(&p, "payments", utf, n);
    const char *open = strchr(p.why, '(');
    assert_non_null(open);
    size_t body = strlen(open + 1) - strlen("...)");
    assert_int_equal(body % 2, 0);
    assert_true(body <= RV_WINDOW_PAUSE_REASON_MAX - 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc_helper),       cmocka_unit_test(test_parse),
        cmocka_unit_test(test_open_and_next),    cmocka_unit_test(test_duration),
        cmocka_unit_test(test_disruptive_kinds), cmocka_unit_test(test_hold),
        cmocka_unit_test(test_pause_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
