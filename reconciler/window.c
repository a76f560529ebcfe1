/* window.c - maintenance windows and pause files (see window.h). */
#include "window.h"

#include <stdio.h>
#include <string.h>

#define DAY_S 86400
#define WEEK_S (7 * DAY_S)
/* 1970-01-01, day 0 of Unix time, was a Thursday: Monday is 3 days before. */
#define EPOCH_WEEKDAY 3

static const char *const day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Daily"};

/* "HH:MM" with HH 00..23 and MM 00..59, as the schema's pattern. */
static bool parse_hhmm(const char *s, int *minutes)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] != ':' || s[3] < '0' ||
        s[3] > '9' || s[4] < '0' || s[4] > '9')
        return false;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return false;
    *minutes = h * 60 + m;
    return true;
}

int window_parse(struct window *out, const char *text, struct rv_error *err)
{
    const char *p = NULL;
    int from = 0, to = 0;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i <= WINDOW_DAILY && p == NULL; i++) {
        size_t n = strlen(day_names[i]);
        if (strncmp(text, day_names[i], n) == 0 && text[n] == ' ') {
            out->day = i;
            p = text + n + 1;
        }
    }
    if (p == NULL || strlen(p) != 11 || p[5] != '-' || !parse_hhmm(p, &from) ||
        !parse_hhmm(p + 6, &to))
        return rv_error_set(err, RV_EINVAL, false,
                            "cannot read maintenance window '%.40s'; write a day (Mon to Sun, "
                            "or Daily) and a time range in UTC, such as 'Sun 02:00-04:00'",
                            text);
    if (from == to)
        return rv_error_set(err, RV_EINVAL, false,
                            "maintenance window '%s' ends when it starts; give it a length", text);
    out->from = from;
    out->minutes = to > from ? to - from : to + 24 * 60 - from;
    snprintf(out->text, sizeof(out->text), "%s", text);
    return 0;
}

/* a mod m in [0, m), also for negative a (times before 1970). */
static int64_t mod(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

/* Seconds from the latest opening at or before now, within one period: the
 * window is open while this is under its length. */
static int64_t since_opening(const struct window *w, int64_t now)
{
    if (w->day == WINDOW_DAILY)
        return mod(now - (int64_t)w->from * 60, DAY_S);
    int64_t start = (int64_t)w->day * DAY_S + (int64_t)w->from * 60;
    return mod(now + (int64_t)EPOCH_WEEKDAY * DAY_S - start, WEEK_S);
}

bool window_is_open(const struct window *w, int64_t now)
{
    return since_opening(w, now) < (int64_t)w->minutes * 60;
}

int64_t window_next_open(const struct window *w, int64_t now)
{
    if (window_is_open(w, now))
        return now;
    int64_t period = w->day == WINDOW_DAILY ? DAY_S : WEEK_S;
    return now + period - since_opening(w, now);
}

void window_duration(char *out, size_t size, int64_t seconds)
{
    int64_t m = seconds <= 0 ? 0 : (seconds + 59) / 60;
    int64_t d = m / (24 * 60), h = m % (24 * 60) / 60;
    m %= 60;
    if (d > 0)
        snprintf(out, size, "%lldd%lldh%lldm", (long long)d, (long long)h, (long long)m);
    else if (h > 0)
        snprintf(out, size, "%lldh%lldm", (long long)h, (long long)m);
    else
        snprintf(out, size, "%lldm", (long long)m);
}

bool window_kind_disruptive(const char *kind)
{
    /* A server restart or a role change: the clients of the cluster
     * notice. Provisioning, replicas being added, users, reloadable
     * parameters and backups do not interrupt anyone. remove_replica is
     * not held: the same kind takes a failed instance away so that it can
     * be replaced, and holding that would leave the cluster a replica
     * short until the window. */
    static const char *const kinds[] = {"restart_node", "resize", "upgrade_replica", "switchover",
                                        "upgrade_node"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kind, kinds[i]) == 0)
            return true;
    }
    return false;
}

static const struct spec_cluster *find_cluster(const struct spec_set *set, const char *cluster)
{
    const char *slash = strchr(cluster, '/');
    if (slash == NULL || set == NULL)
        return NULL;
    size_t ns = (size_t)(slash - cluster);
    for (size_t i = 0; i < set->nclusters; i++) {
        const struct spec_cluster *c = set->clusters[i];
        if (strlen(c->namespace_) == ns && strncmp(c->namespace_, cluster, ns) == 0 &&
            strcmp(c->name, slash + 1) == 0)
            return c;
    }
    return NULL;
}

bool window_hold(char *why, size_t size, int64_t *out_until, const struct spec_set *set,
                 const char *cluster, const char *kind, int64_t now)
{
    struct window w;
    struct rv_error err = {0};
    *out_until = 0;
    if (!window_kind_disruptive(kind))
        return false;
    const struct spec_cluster *c = find_cluster(set, cluster);
    if (c == NULL || c->maintenance.window == NULL)
        return false;
    if (window_parse(&w, c->maintenance.window, &err) != 0) {
        snprintf(why, size, "held: %s", err.msg);
        return true;
    }
    if (window_is_open(&w, now))
        return false;
    *out_until = window_next_open(&w, now);
    snprintf(why, size, "waiting for maintenance window %s", w.text);
    return true;
}

/* --- pause files --- */

void window_pause_describe(struct window_pause *out, const char *namespace_, const char *content,
                           size_t len)
{
    char reason[RV_WINDOW_PAUSE_REASON_MAX + 1];
    size_t n = 0, i = 0;
    bool cut = false;
    memset(out, 0, sizeof(*out));
    snprintf(out->namespace_, sizeof(out->namespace_), "%s", namespace_);
    while (content && i < len &&
           (content[i] == ' ' || content[i] == '\t' || content[i] == '\r' || content[i] == '\n'))
        i++;
    for (; content && i < len && content[i] != '\n'; i++) {
        unsigned char ch = (unsigned char)content[i];
        if (ch < 0x20 || ch == 0x7f)
            continue;
        if (n >= RV_WINDOW_PAUSE_REASON_MAX - 3) {
            cut = true;
            break;
        }
        reason[n++] = (char)ch;
    }
    while (n > 0 && (reason[n - 1] == ' ' || reason[n - 1] == '\t'))
        n--;
    /* never end inside a UTF-8 sequence */
    if (cut)
        while (n > 0 && ((unsigned char)reason[n - 1] & 0xc0) == 0x80)
            n--;
    if (cut && n > 0 && ((unsigned char)reason[n - 1] & 0xc0) == 0xc0)
        n--;
    reason[n] = '\0';
    if (n == 0)
        snprintf(out->why, sizeof(out->why), "paused: clusters/%s/%s", out->namespace_,
                 WINDOW_PAUSE_FILE);
    else
        snprintf(out->why, sizeof(out->why), "paused: clusters/%s/%s (%s%s)", out->namespace_,
                 WINDOW_PAUSE_FILE, reason, cut ? "..." : "");
}
