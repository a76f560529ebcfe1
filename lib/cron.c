/* cron.c - five-field cron expressions in UTC (see cron.h). */
#include "cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct field {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] stands for min + i; NULL: none */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, day_names},
};

/* A number or a name at *p; advances *p. */
static int value(int *out, const char **p, const struct field *f)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v <= 1000)
            v = v * 10 + (*s++ - '0');
        if (v < f->min || v > f->max)
            return -1;
        *out = (int)v;
        *p = s;
        return 0;
    }
    for (size_t i = 0; f->names != NULL && f->names[i] != NULL; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f->min + (int)i;
            *p = s + 3;
            return 0;
        }
    }
    return -1;
}

/* One comma-separated item: "*", "a", "a-b", each with an optional "/n". */
static int item(uint64_t *bits, const char **p, const struct field *f)
{
    int lo = f->min, hi = f->max, step = 1;
    const char *s = *p;
    if (*s == '*') {
        s++;
    } else {
        if (value(&lo, &s, f) != 0)
            return -1;
        hi = lo;
        if (*s == '-') {
            s++;
            if (value(&hi, &s, f) != 0 || hi < lo)
                return -1;
        }
    }
    if (*s == '/') {
        long n = 0;
        s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        while (isdigit((unsigned char)*s) && n <= 1000)
            n = n * 10 + (*s++ - '0');
        if (n < 1 || n > f->max)
            return -1;
        step = (int)n;
        if ((*p)[0] != '*' && hi == lo)
            hi = f->max; /* "5/15" means 5-max/15 */
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ull << v;
    *p = s;
    return 0;
}

static int parse_field(uint64_t *bits, const char *text, const struct field *f)
{
    const char *p = text;
    *bits = 0;
    for (;;) {
        if (item(bits, &p, f) != 0)
            return -1;
        if (*p == '\0')
            return 0;
        if (*p != ',')
            return -1;
        p++;
    }
}

static const char *shorthand(const char *expr)
{
    static const char *const map[][2] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(expr, map[i][0]) == 0)
            return map[i][1];
    return expr;
}

int cron_parse(struct cron *c, const char *expr, struct rv_error *err)
{
    char copy[RV_CRON_EXPR_MAX + 1];
    char *tok[5];
    char *save = NULL;
    size_t n = 0;
    uint64_t bits[5];
    memset(c, 0, sizeof(*c));
    if (expr == NULL || strlen(expr) > RV_CRON_EXPR_MAX)
        return rv_error_set(err, RV_EPARSE, false, "cron expression missing or over %d characters",
                            RV_CRON_EXPR_MAX);
    snprintf(copy, sizeof(copy), "%s", shorthand(expr));
    for (char *t = strtok_r(copy, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        if (n == 5)
            return rv_error_set(err, RV_EPARSE, false,
                                "cron '%s': more than 5 fields (minute hour day month weekday)",
                                expr);
        tok[n++] = t;
    }
    if (n != 5)
        return rv_error_set(err, RV_EPARSE, false,
                            "cron '%s': expected 5 fields (minute hour day month weekday), got %zu",
                            expr, n);
    for (size_t i = 0; i < 5; i++)
        if (parse_field(&bits[i], tok[i], &fields[i]) != 0)
            return rv_error_set(err, RV_EPARSE, false, "cron '%s': bad %s field '%s' (%d-%d)", expr,
                                fields[i].name, tok[i], fields[i].min, fields[i].max);
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->mdays = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    if (bits[4] & (1ull << 7))
        bits[4] |= 1; /* 7 is Sunday too */
    c->wdays = (uint8_t)(bits[4] & 0x7f);
    c->mday_star = tok[2][0] == '*';
    c->wday_star = tok[4][0] == '*';
    return 0;
}

static bool day_matches(const struct cron *c, const struct tm *t)
{
    bool md = (c->mdays >> t->tm_mday) & 1u;
    bool wd = (c->wdays >> t->tm_wday) & 1u;
    if (c->mday_star && c->wday_star)
        return true;
    if (c->mday_star)
        return wd;
    if (c->wday_star)
        return md;
    return md || wd;
}

int cron_next(int64_t *out, const struct cron *c, int64_t after)
{
    struct tm t;
    time_t now = (time_t)(after - (after % 60 + 60) % 60 + 60); /* next whole minute */
    int64_t horizon = after + (int64_t)RV_CRON_HORIZON_YEARS * 366 * 86400;
    if (gmtime_r(&now, &t) == NULL)
        return RV_ENOTFOUND;
    /* Each step moves to the start of the next candidate unit; at most
     * 12 month + 31 day + 24 hour + 60 minute steps per matching day, and
     * the horizon bounds the whole walk. */
    for (;;) {
        time_t cur = timegm(&t);
        if ((int64_t)cur > horizon)
            return RV_ENOTFOUND;
        if (!((c->months >> (t.tm_mon + 1)) & 1u)) {
            t.tm_mon++;
            t.tm_mday = 1;
            t.tm_hour = 0;
            t.tm_min = 0;
        } else if (!day_matches(c, &t)) {
            t.tm_mday++;
            t.tm_hour = 0;
            t.tm_min = 0;
        } else if (!((c->hours >> t.tm_hour) & 1u)) {
            t.tm_hour++;
            t.tm_min = 0;
        } else if (!((c->minutes >> t.tm_min) & 1u)) {
            t.tm_min++;
        } else {
            *out = (int64_t)cur;
            return 0;
        }
        t.tm_sec = 0;
        t.tm_isdst = 0;
        time_t norm = timegm(&t); /* normalizes overflowed fields */
        if (gmtime_r(&norm, &t) == NULL)
            return RV_ENOTFOUND;
    }
}
