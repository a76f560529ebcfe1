/* params.c - engine parameter catalogs: look a name up, check a value the
 * way the engine reads it, and tell whether a change needs a restart.
 *
 * The tables come from scripts/gen-params.sh (see params.h). PostgreSQL's
 * rules follow its GUC input functions: booleans by unique prefix,
 * integers and reals with an optional memory or time unit converted to the
 * parameter's own unit, enums by case-insensitive match. MariaDB's follow
 * what reeve-agent passes to the server (agent/engine_mariadb.c): integers
 * with an optional K/M/G/T suffix, ON/OFF/TRUE/FALSE/YES/NO/1/0, enums (by
 * name or index), sets and flag sets.
 */
#include "params.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "limits.h"

static const struct param_def pg15_defs[] = {
#include "params_pg15.inc"
};

static const struct param_def mariadb1011_defs[] = {
#include "params_mariadb1011.inc"
};

struct param_catalog {
    const char *engine;
    const char *version;
    const char *title;
    bool dashes; /* '-' and '_' are the same in names */
    const struct param_def *defs;
    size_t ndefs;
};

static const struct param_catalog catalogs[] = {
    {"postgresql", "15", "PostgreSQL 15", false, pg15_defs,
     sizeof(pg15_defs) / sizeof(pg15_defs[0])},
    {"mariadb", "10.11", "MariaDB 10.11", true, mariadb1011_defs,
     sizeof(mariadb1011_defs) / sizeof(mariadb1011_defs[0])},
};
#define NCATALOGS (sizeof(catalogs) / sizeof(catalogs[0]))

static bool is_pg(const struct param_catalog *cat)
{
    return strcmp(cat->engine, "postgresql") == 0;
}

/* ---------------------------------------------------------------- catalogs */

const struct param_catalog *params_catalog(const char *engine, const char *version)
{
    for (size_t i = 0; engine && version && i < NCATALOGS; i++) {
        if (strcmp(catalogs[i].engine, engine) == 0 && strcmp(catalogs[i].version, version) == 0)
            return &catalogs[i];
    }
    return NULL;
}

const char *params_catalog_title(const struct param_catalog *cat)
{
    return cat->title;
}

const struct param_def *params_catalog_defs(const struct param_catalog *cat, size_t *n)
{
    *n = cat->ndefs;
    return cat->defs;
}

/* name lowercased (and '-' as '_' where the engine allows it) into out;
 * false when it is too long to be any known name. */
static bool norm_name(const struct param_catalog *cat, const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i]; i++) {
        if (i + 1 >= cap)
            return false;
        char c = (char)tolower((unsigned char)name[i]);
        out[i] = (cat->dashes && c == '-') ? '_' : c;
    }
    out[i] = '\0';
    return true;
}

/* Byte order of the lowercase names, as the generator sorts them. */
static int lower_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
        if (ca != cb || ca == 0)
            return ca - cb;
    }
}

const struct param_def *params_lookup(const struct param_catalog *cat, const char *name)
{
    char key[RV_PARAM_NAME_MAX];
    size_t lo = 0, hi = cat->ndefs;
    if (!norm_name(cat, name, key, sizeof(key)))
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = lower_cmp(key, cat->defs[mid].name);
        if (c == 0)
            return &cat->defs[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Optimal-string-alignment distance of two lowercase names (a swap of two
 * neighbours is one edit), or SIZE_MAX when either is too long. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[RV_PARAM_NAME_MAX + 1][RV_PARAM_NAME_MAX + 1];
    if (la > RV_PARAM_NAME_MAX || lb > RV_PARAM_NAME_MAX)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* As for field names (schema.c): at most 2 edits, and at most a third of
 * what was written, so short words do not suggest unrelated names. */
const char *params_suggest(const struct param_catalog *cat, const char *name)
{
    char key[RV_PARAM_NAME_MAX], cand[RV_PARAM_NAME_MAX];
    const char *best = NULL;
    size_t best_d = 3;
    if (!norm_name(cat, name, key, sizeof(key)))
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < cat->ndefs; i++) {
        const struct param_def *d = &cat->defs[i];
        if (d->apply != PARAM_RELOAD && d->apply != PARAM_RESTART)
            continue; /* never suggest a name that would be refused */
        if (!norm_name(cat, d->name, cand, sizeof(cand)))
            continue;
        size_t dist = edit_distance(key, cand);
        if (dist < best_d && dist * 3 <= len) {
            best = d->name;
            best_d = dist;
        }
    }
    return best;
}

/* The value of the comma-separated list closest to word (len bytes), by
 * the same rule as names, into out; false when none is close. */
static bool suggest_value(const char *values, const char *word, size_t len, char *out, size_t cap)
{
    char w[RV_PARAM_NAME_MAX + 1], v[RV_PARAM_NAME_MAX + 1];
    size_t best_d = 3;
    bool found = false;
    if (values == NULL || len == 0 || len > RV_PARAM_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        w[i] = (char)tolower((unsigned char)word[i]);
    w[len] = '\0';
    for (const char *p = values; *p;) {
        size_t l = strcspn(p, ",");
        if (l <= RV_PARAM_NAME_MAX) {
            for (size_t i = 0; i < l; i++)
                v[i] = (char)tolower((unsigned char)p[i]);
            v[l] = '\0';
            size_t dist = edit_distance(w, v);
            if (dist < best_d && dist * 3 <= len) {
                snprintf(out, cap, "%.*s", (int)l, p);
                best_d = dist;
                found = true;
            }
        }
        p += l;
        if (*p == ',')
            p++;
    }
    return found;
}

/* " (did you mean 'x'?)" or "" */
static const char *value_hint(char *out, size_t cap, const char *values, const char *word,
                              size_t len)
{
    char near[RV_PARAM_NAME_MAX + 1];
    if (!suggest_value(values, word, len, near, sizeof(near)))
        return "";
    snprintf(out, cap, " (did you mean '%s'?)", near);
    return out;
}

/* ------------------------------------------------------------------ messages */

static enum params_verdict say(enum params_verdict v, char *msg, size_t msgsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum params_verdict say(enum params_verdict v, char *msg, size_t msgsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msgsz, fmt, ap);
    va_end(ap);
    return v;
}

/* A user's value quoted for a message, cut with "..." past
 * RV_PARAM_QUOTE_MAX characters. */
static const char *quoted(char *out, size_t cap, const char *value)
{
    size_t len = strlen(value);
    if (len <= RV_PARAM_QUOTE_MAX)
        snprintf(out, cap, "'%s'", value);
    else
        snprintf(out, cap, "'%.*s...'", RV_PARAM_QUOTE_MAX, value);
    return out;
}

/* "a, b, c" from "a,b,c", ending in "..." when longer than
 * RV_PARAM_LIST_CHARS. */
static void list_values(char *out, size_t cap, const char *values)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = values; *p;) {
        size_t len = strcspn(p, ",");
        size_t need = len + (n ? 2 : 0);
        if (n + need > RV_PARAM_LIST_CHARS || n + need + 4 >= cap) {
            snprintf(out + n, cap - n, "%s...", n ? ", " : "");
            return;
        }
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? ", " : "", (int)len, p);
        p += len;
        if (*p == ',')
            p++;
    }
}

/* Whether word (len bytes) is one of the comma-separated values, ignoring
 * case; its index in *idx. */
static bool in_list(const char *values, const char *word, size_t len, size_t *idx)
{
    size_t i = 0;
    for (const char *p = values; p && *p; i++) {
        size_t l = strcspn(p, ",");
        if (l == len && strncasecmp(p, word, len) == 0) {
            if (idx)
                *idx = i;
            return true;
        }
        p += l;
        if (*p == ',')
            p++;
    }
    return false;
}

/* --------------------------------------------------------- PostgreSQL units */

struct unit {
    const char *name;
    double scale; /* bytes, or microseconds */
};

static const struct unit pg_memory_units[] = {
    {"TB", 1099511627776.0}, {"GB", 1073741824.0}, {"MB", 1048576.0}, {"kB", 1024.0}, {"B", 1.0},
};
static const struct unit pg_time_units[] = {
    {"d", 86400e6}, {"h", 3600e6}, {"min", 60e6}, {"s", 1e6}, {"ms", 1e3}, {"us", 1.0},
};
#define NMEM (sizeof(pg_memory_units) / sizeof(pg_memory_units[0]))
#define NTIME (sizeof(pg_time_units) / sizeof(pg_time_units[0]))

/* The unit table a parameter's unit belongs to, and the unit's scale. */
static const struct unit *unit_table(const char *unit, size_t *n, double *scale)
{
    if (unit == NULL)
        return NULL;
    if (strcmp(unit, "8kB") == 0) {
        *n = NMEM;
        *scale = 8192.0;
        return pg_memory_units;
    }
    for (size_t i = 0; i < NMEM; i++) {
        if (strcmp(unit, pg_memory_units[i].name) == 0) {
            *n = NMEM;
            *scale = pg_memory_units[i].scale;
            return pg_memory_units;
        }
    }
    for (size_t i = 0; i < NTIME; i++) {
        if (strcmp(unit, pg_time_units[i].name) == 0) {
            *n = NTIME;
            *scale = pg_time_units[i].scale;
            return pg_time_units;
        }
    }
    return NULL;
}

/* "B", "kB", "MB", "GB", "TB" for the hint. */
static void unit_names(char *out, size_t cap, const struct unit *t, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = n; i-- > 0 && used < cap;)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i + 1 < n ? ", " : "", t[i].name);
}

/* A bound in the largest unit that holds it exactly: 16 x 8kB is "128kB". */
static void fmt_bound(char *out, size_t cap, const struct param_def *d, int64_t v)
{
    size_t n = 0;
    double scale = 1;
    const struct unit *t = unit_table(d->unit, &n, &scale);
    if (t == NULL || v <= 0) {
        snprintf(out, cap, "%" PRId64, v);
        return;
    }
    /* every catalog bound times its unit is below 2^53: exact in a double */
    double base = (double)v * scale;
    for (size_t i = 0; i < n; i++) {
        if (fmod(base, t[i].scale) == 0) {
            snprintf(out, cap, "%.0f%s", base / t[i].scale, t[i].name);
            return;
        }
    }
    snprintf(out, cap, "%" PRId64 "%s", v, d->unit);
}

/* PostgreSQL's number with an optional unit: "1.5GB", " 30 s", "0x10". The
 * value converted to the parameter's own unit in *out. Returns PARAMS_OK,
 * PARAMS_INVALID (msg says why) or PARAMS_OUT_OF_RANGE for a number too big
 * for a double. */
static enum params_verdict pg_number(const struct param_def *d, const char *s, bool integer,
                                     double *out, char *msg, size_t msgsz)
{
    char q[RV_PARAM_QUOTE_MAX + 8], units[64];
    char *end;
    double v;
    errno = 0;
    if (integer) {
        long long iv = strtoll(s, &end, 0);
        v = (double)iv;
        if (*end == '.' || *end == 'e' || *end == 'E' || errno == ERANGE) {
            errno = 0;
            v = strtod(s, &end);
        }
    } else {
        v = strtod(s, &end);
    }
    if (end == s || isnan(v))
        return say(PARAMS_INVALID, msg, msgsz, "%s is not a valid value for %s: %s",
                   quoted(q, sizeof(q), s), d->name,
                   integer ? "expected a whole number" : "expected a number");
    if (errno == ERANGE || isinf(v))
        return PARAMS_OUT_OF_RANGE;
    while (isspace((unsigned char)*end))
        end++;
    if (*end == '\0') {
        *out = v;
        return PARAMS_OK;
    }
    size_t n = 0;
    double scale = 1;
    const struct unit *t = unit_table(d->unit, &n, &scale);
    if (t == NULL)
        return say(PARAMS_INVALID, msg, msgsz, "%s is not a valid value for %s: it takes no unit",
                   quoted(q, sizeof(q), s), d->name);
    size_t ulen = 0;
    while (end[ulen] && !isspace((unsigned char)end[ulen]))
        ulen++;
    const char *rest = end + ulen;
    while (isspace((unsigned char)*rest))
        rest++;
    for (size_t i = 0; *rest == '\0' && i < n; i++) {
        if (strlen(t[i].name) == ulen && strncmp(end, t[i].name, ulen) == 0) {
            *out = v * t[i].scale / scale;
            return PARAMS_OK;
        }
    }
    unit_names(units, sizeof(units), t, n);
    return say(PARAMS_INVALID, msg, msgsz,
               "%s is not a valid value for %s: valid units are %s (case matters)",
               quoted(q, sizeof(q), s), d->name, units);
}

static void pg_range_msg(const struct param_def *d, const char *s, char *msg, size_t msgsz)
{
    char q[RV_PARAM_QUOTE_MAX + 8], lo[48], hi[48];
    fmt_bound(lo, sizeof(lo), d, d->min);
    fmt_bound(hi, sizeof(hi), d, (int64_t)d->max);
    say(PARAMS_OUT_OF_RANGE, msg, msgsz, "%s is out of range for %s (%s .. %s)",
        quoted(q, sizeof(q), s), d->name, lo, hi);
}

static enum params_verdict pg_int(const struct param_def *d, const char *s, char *msg, size_t msgsz)
{
    double v = 0;
    enum params_verdict r = pg_number(d, s, true, &v, msg, msgsz);
    if (r == PARAMS_INVALID)
        return r;
    v = rint(v);
    if (r == PARAMS_OUT_OF_RANGE || v < (double)d->min || v > (double)d->max) {
        pg_range_msg(d, s, msg, msgsz);
        return PARAMS_OUT_OF_RANGE;
    }
    return PARAMS_OK;
}

static enum params_verdict pg_real(const struct param_def *d, const char *s, char *msg,
                                   size_t msgsz)
{
    char q[RV_PARAM_QUOTE_MAX + 8];
    double v = 0;
    enum params_verdict r = pg_number(d, s, false, &v, msg, msgsz);
    if (r == PARAMS_INVALID)
        return r;
    if (r == PARAMS_OUT_OF_RANGE || v < d->rmin || v > d->rmax)
        return say(PARAMS_OUT_OF_RANGE, msg, msgsz, "%s is out of range for %s (%g%s .. %g%s)",
                   quoted(q, sizeof(q), s), d->name, d->rmin, d->unit ? d->unit : "", d->rmax,
                   d->unit ? d->unit : "");
    return PARAMS_OK;
}

/* PostgreSQL's parse_bool: true/false/yes/no by any prefix, on/off by a
 * prefix of two letters or more, 1 and 0; case does not matter. */
static int pg_bool(const char *s)
{
    size_t len = strlen(s);
    static const struct {
        const char *word;
        size_t min;
        int value;
    } words[] = {{"true", 1, 1}, {"false", 1, 0}, {"yes", 1, 1}, {"no", 1, 0},
                 {"on", 2, 1},   {"off", 2, 0},   {"1", 1, 1},   {"0", 1, 0}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (len >= words[i].min && len <= strlen(words[i].word) &&
            strncasecmp(s, words[i].word, len) == 0)
            return words[i].value;
    }
    return -1;
}

static enum params_verdict pg_value(const struct param_def *d, const char *s, char *msg,
                                    size_t msgsz)
{
    char q[RV_PARAM_QUOTE_MAX + 8], list[RV_PARAM_LIST_CHARS + 8], hint[RV_PARAM_NAME_MAX + 32];
    switch (d->type) {
    case PARAM_BOOL:
        if (pg_bool(s) < 0)
            return say(PARAMS_INVALID, msg, msgsz,
                       "%s is not a valid value for %s: must be on or off (or true/false, "
                       "yes/no, 1/0)",
                       quoted(q, sizeof(q), s), d->name);
        return PARAMS_OK;
    case PARAM_INT:
        return pg_int(d, s, msg, msgsz);
    case PARAM_REAL:
        return pg_real(d, s, msg, msgsz);
    case PARAM_ENUM:
        if (in_list(d->values, s, strlen(s), NULL))
            return PARAMS_OK;
        /* an enum with on and off also takes the other boolean spellings */
        if (in_list(d->values, "on", 2, NULL) && in_list(d->values, "off", 3, NULL)) {
            static const char *const extra = "true,false,yes,no,1,0";
            if (in_list(extra, s, strlen(s), NULL))
                return PARAMS_OK;
        }
        list_values(list, sizeof(list), d->values);
        return say(PARAMS_INVALID, msg, msgsz,
                   "%s is not a valid value for %s: must be one of %s%s", quoted(q, sizeof(q), s),
                   d->name, list, value_hint(hint, sizeof(hint), d->values, s, strlen(s)));
    default:
        return PARAMS_OK;
    }
}

/* ---------------------------------------------------------------- MariaDB */

/* An integer with an optional K/M/G/T suffix (1024-based): the sign in *neg,
 * the magnitude in *mag. False when it is not one; *overflow when it is but
 * does not fit in 64 bits. */
static bool mdb_parse_int(const char *s, bool *neg, uint64_t *mag, bool *overflow)
{
    static const char suffixes[] = "kmgt"; /* 2^10, 2^20, 2^30, 2^40 */
    const char *p = s;
    char *end;
    unsigned shift = 0;
    *neg = *p == '-';
    *overflow = false;
    if (*neg)
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno == ERANGE)
        *overflow = true;
    const char *suffix = *end ? strchr(suffixes, tolower((unsigned char)*end)) : NULL;
    if (suffix) {
        shift = 10u * (unsigned)(suffix - suffixes + 1);
        end++;
    }
    if (*end != '\0')
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        *overflow = true;
    *mag = (uint64_t)v << shift;
    if (*neg && *mag > (uint64_t)INT64_MAX + 1)
        *overflow = true;
    return true;
}

/* A bound with the largest K/M/G/T suffix that holds it exactly, as an
 * option file would take it: 2097152 is "2M". */
static void mdb_fmt_size(char *out, size_t cap, uint64_t v)
{
    static const char suffix[] = "KMGT";
    int k = 0;
    while (k < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        k++;
    }
    if (k == 0)
        snprintf(out, cap, "%" PRIu64, v);
    else
        snprintf(out, cap, "%" PRIu64 "%c", v, suffix[k - 1]);
}

static bool mdb_int_in_range(const struct param_def *d, bool neg, uint64_t mag)
{
    if (neg) {
        if (d->min >= 0)
            return mag == 0;
        /* -min without overflow: min is at least INT64_MIN */
        uint64_t lim = (uint64_t)(-(d->min + 1)) + 1;
        return mag <= lim;
    }
    if (d->min > 0 && mag < (uint64_t)d->min)
        return false;
    return mag <= d->max;
}

static enum params_verdict mdb_int(const struct param_def *d, const char *s, char *msg,
                                   size_t msgsz)
{
    char q[RV_PARAM_QUOTE_MAX + 8];
    bool neg, overflow;
    uint64_t mag = 0;
    if (!mdb_parse_int(s, &neg, &mag, &overflow))
        return say(PARAMS_INVALID, msg, msgsz,
                   "%s is not a valid value for %s: expected a whole number, optionally with "
                   "a K, M, G or T suffix",
                   quoted(q, sizeof(q), s), d->name);
    if (overflow || !mdb_int_in_range(d, neg, mag)) {
        char lo[32], hi[32];
        if (d->min < 0)
            snprintf(lo, sizeof(lo), "%" PRId64, d->min);
        else
            mdb_fmt_size(lo, sizeof(lo), (uint64_t)d->min);
        mdb_fmt_size(hi, sizeof(hi), d->max);
        return say(PARAMS_OUT_OF_RANGE, msg, msgsz, "%s is out of range for %s (%s .. %s)",
                   quoted(q, sizeof(q), s), d->name, lo, hi);
    }
    return PARAMS_OK;
}

static enum params_verdict mdb_real(const struct param_def *d, const char *s, char *msg,
                                    size_t msgsz)
{
    char q[RV_PARAM_QUOTE_MAX + 8];
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || isnan(v) || isspace((unsigned char)*s))
        return say(PARAMS_INVALID, msg, msgsz, "%s is not a valid value for %s: expected a number",
                   quoted(q, sizeof(q), s), d->name);
    if (errno == ERANGE || v < d->rmin || v > d->rmax)
        return say(PARAMS_OUT_OF_RANGE, msg, msgsz, "%s is out of range for %s (%g .. %g)",
                   quoted(q, sizeof(q), s), d->name, d->rmin, d->rmax);
    return PARAMS_OK;
}

/* Each comma-separated item of s is one of the values (SET), or
 * "flag=on|off|default" or "default" (FLAGSET); the first bad item in *bad,
 * and *bad_setting when its flag is known but its setting is not. */
static bool mdb_items_ok(const struct param_def *d, const char *s, const char **bad, size_t *badlen,
                         bool *bad_setting)
{
    *bad_setting = false;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        bool ok;
        if (d->type == PARAM_FLAGSET) {
            const char *eq = memchr(p, '=', len);
            size_t flen = eq ? (size_t)(eq - p) : len;
            ok = in_list(d->values, p, flen, NULL);
            if (ok && eq) {
                ok = in_list("on,off,default", eq + 1, len - flen - 1, NULL);
                *bad_setting = !ok;
            } else if (ok) {
                ok = flen == 7 && strncasecmp(p, "default", 7) == 0;
                *bad_setting = !ok;
            }
        } else {
            ok = len == 0 || in_list(d->values, p, len, NULL);
        }
        if (!ok) {
            *bad = p;
            *badlen = len;
            return false;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return true;
}

static enum params_verdict mdb_value(const struct param_def *d, const char *s, char *msg,
                                     size_t msgsz)
{
    char q[RV_PARAM_QUOTE_MAX + 8], list[RV_PARAM_LIST_CHARS + 8], item[RV_PARAM_QUOTE_MAX + 1];
    char hint[RV_PARAM_NAME_MAX + 32];
    const char *bad = NULL;
    size_t badlen = 0, idx = 0;
    bool bad_setting = false;
    char *end;
    switch (d->type) {
    case PARAM_BOOL:
        if (in_list("on,off,true,false,yes,no,1,0", s, strlen(s), NULL))
            return PARAMS_OK;
        return say(PARAMS_INVALID, msg, msgsz,
                   "%s is not a valid value for %s: must be ON or OFF (or TRUE/FALSE, 1/0)",
                   quoted(q, sizeof(q), s), d->name);
    case PARAM_INT:
        return mdb_int(d, s, msg, msgsz);
    case PARAM_REAL:
        return mdb_real(d, s, msg, msgsz);
    case PARAM_ENUM:
        if (d->values == NULL || in_list(d->values, s, strlen(s), NULL))
            return PARAMS_OK;
        /* an enum also takes the index of a value */
        errno = 0;
        idx = (size_t)strtoul(s, &end, 10);
        if (isdigit((unsigned char)*s) && *end == '\0' && errno == 0) {
            size_t count = 1;
            for (const char *p = d->values; *p; p++)
                count += *p == ',';
            if (idx < count)
                return PARAMS_OK;
        }
        list_values(list, sizeof(list), d->values);
        return say(PARAMS_INVALID, msg, msgsz,
                   "%s is not a valid value for %s: must be one of %s%s", quoted(q, sizeof(q), s),
                   d->name, list, value_hint(hint, sizeof(hint), d->values, s, strlen(s)));
    case PARAM_SET:
    case PARAM_FLAGSET:
        if (d->values == NULL || mdb_items_ok(d, s, &bad, &badlen, &bad_setting))
            return PARAMS_OK;
        snprintf(item, sizeof(item), "%.*s",
                 (int)(badlen < RV_PARAM_QUOTE_MAX ? badlen : RV_PARAM_QUOTE_MAX), bad);
        if (bad_setting)
            return say(PARAMS_INVALID, msg, msgsz,
                       "%s is not a valid value for %s: '%s' must be written flag=on, "
                       "flag=off or flag=default",
                       quoted(q, sizeof(q), s), d->name, item);
        list_values(list, sizeof(list), d->values);
        return say(PARAMS_INVALID, msg, msgsz,
                   "%s is not a valid value for %s: '%s' is not one of %s%s",
                   quoted(q, sizeof(q), s), d->name, item, list,
                   value_hint(hint, sizeof(hint), d->values, bad, badlen));
    default:
        return PARAMS_OK;
    }
}

/* ------------------------------------------------------------------ checks */

/* Where a managed parameter's value comes from, for the message. */
static const struct {
    const char *name;
    const char *from;
} managed_from[] = {
    {"archive_command", "set from spec.backup and spec.pitr"},
    {"archive_library", "set from spec.backup and spec.pitr"},
    {"archive_mode", "set from spec.backup and spec.pitr"},
    {"basedir", "part of the server layout reeve-agent creates"},
    {"config_file", "part of the server layout reeve-agent creates"},
    {"data_directory", "part of the server layout reeve-agent creates"},
    {"datadir", "part of the server layout reeve-agent creates"},
    {"hba_file", "set from spec.users and spec.access"},
    {"ident_file", "set from spec.users and spec.access"},
    {"log_bin_basename", "part of the server layout reeve-agent creates"},
    {"log_bin_index", "part of the server layout reeve-agent creates"},
    {"log_error", "part of the server layout reeve-agent creates"},
    {"pid_file", "part of the server layout reeve-agent creates"},
    {"plugin_dir", "part of the server layout reeve-agent creates"},
    {"recovery_target", "set from spec.bootstrap"},
    {"recovery_target_action", "set from spec.bootstrap"},
    {"recovery_target_inclusive", "set from spec.bootstrap"},
    {"recovery_target_lsn", "set from spec.bootstrap"},
    {"recovery_target_name", "set from spec.bootstrap"},
    {"recovery_target_time", "set from spec.bootstrap"},
    {"recovery_target_timeline", "set from spec.bootstrap"},
    {"recovery_target_xid", "set from spec.bootstrap"},
    {"relay_log_index", "part of the server layout reeve-agent creates"},
    {"restore_command", "set from spec.bootstrap and spec.pitr"},
    {"tmpdir", "part of the server layout reeve-agent creates"},
};

static const char *managed_reason(const char *name)
{
    for (size_t i = 0; i < sizeof(managed_from) / sizeof(managed_from[0]); i++) {
        if (strcasecmp(managed_from[i].name, name) == 0)
            return managed_from[i].from;
    }
    return "set from the spec's replication/access fields";
}

enum params_verdict params_check_value(const struct param_catalog *cat, const struct param_def *def,
                                       const char *value, char *msg, size_t msgsz)
{
    switch (def->apply) {
    case PARAM_MANAGED:
        return say(PARAMS_REFUSED, msg, msgsz, "'%s' is managed by reeve (%s); remove it",
                   def->name, managed_reason(def->name));
    case PARAM_FIXED:
        return say(PARAMS_REFUSED, msg, msgsz,
                   "'%s' cannot be set: %s fixes it when the server is built or initialised",
                   def->name, cat->title);
    case PARAM_SESSION:
        return say(PARAMS_REFUSED, msg, msgsz,
                   "'%s' applies to one session only and cannot be set for the server; set it "
                   "in the application's connection",
                   def->name);
    default:
        break;
    }
    return is_pg(cat) ? pg_value(def, value, msg, msgsz) : mdb_value(def, value, msg, msgsz);
}

enum params_verdict params_check(const char *engine, const char *version, const char *name,
                                 const char *value, char *msg, size_t msgsz)
{
    const struct param_catalog *cat = params_catalog(engine, version);
    if (cat == NULL)
        return PARAMS_OK;
    const struct param_def *def = params_lookup(cat, name);
    if (def == NULL && is_pg(cat) && strchr(name, '.'))
        return PARAMS_OK; /* an extension's parameter ("pg_stat_statements.max") */
    if (def == NULL) {
        const char *near = params_suggest(cat, name);
        char q[RV_PARAM_QUOTE_MAX + 8];
        if (near)
            return say(PARAMS_UNKNOWN, msg, msgsz, "%s has no parameter %s (did you mean '%s'?)",
                       cat->title, quoted(q, sizeof(q), name), near);
        return say(PARAMS_UNKNOWN, msg, msgsz, "%s has no parameter %s", cat->title,
                   quoted(q, sizeof(q), name));
    }
    return params_check_value(cat, def, value, msg, msgsz);
}

bool params_needs_restart(const char *engine, const char *version, const char *name)
{
    const struct param_catalog *cat = params_catalog(engine, version);
    for (size_t i = 0; cat == NULL && engine && i < NCATALOGS; i++) {
        if (strcmp(catalogs[i].engine, engine) == 0)
            cat = &catalogs[i]; /* one catalog per engine so far: it is the nearest */
    }
    if (cat == NULL)
        return true;
    const struct param_def *def = params_lookup(cat, name);
    if (def == NULL)
        return true;
    return def->apply == PARAM_RESTART;
}
