/* params.h - what the engines know about their configuration parameters:
 * names, types, units, ranges, allowed values, and how a change applies
 * (reload, restart, or not at all).
 *
 * The catalogs are generated from the servers themselves by
 * scripts/gen-params.sh (pg_settings of PostgreSQL 15, SYSTEM_VARIABLES of
 * MariaDB 10.11) and committed as params_pg15.inc and params_mariadb1011.inc.
 * A value is checked the way its engine reads it: PostgreSQL's booleans,
 * integers with memory and time units, reals, enums; MariaDB's numbers with
 * K/M/G suffixes, ON/OFF, enums, sets and flag sets.
 *
 * An engine version with no catalog (PostgreSQL 16, MariaDB 11.4...) is not
 * checked: every name and value passes, since guessing from another version
 * would reject what that version added. docs/parameters.md says more.
 */
#ifndef REEVE_PARAMS_H
#define REEVE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum param_type {
    PARAM_BOOL,
    PARAM_INT,
    PARAM_REAL,
    PARAM_STRING,
    PARAM_ENUM,
    PARAM_SET,     /* MariaDB: a comma-separated subset of the values */
    PARAM_FLAGSET, /* MariaDB: "flag=on,flag=off,default" (optimizer_switch) */
};

/* How a change reaches a running server. */
enum param_apply {
    PARAM_RELOAD,  /* PostgreSQL: reload (SIGHUP); MariaDB: SET GLOBAL */
    PARAM_RESTART, /* read at server start only: a rolling restart */
    PARAM_MANAGED, /* reeve sets it from other spec fields: refused */
    PARAM_FIXED,   /* fixed when the server is built or initialised: refused */
    PARAM_SESSION, /* meaningful per session only: refused */
};

struct param_def {
    const char *name; /* as the engine spells it; look-ups ignore case */
    enum param_type type;
    const char *unit; /* PostgreSQL's base unit ("8kB", "ms"...), or NULL */
    int64_t min;      /* PARAM_INT bounds, in units of `unit` */
    uint64_t max;
    double rmin, rmax;  /* PARAM_REAL bounds */
    const char *values; /* PARAM_ENUM/SET/FLAGSET: "a,b,c"; NULL for no list */
    enum param_apply apply;
};

struct param_catalog;

/* The catalog for an engine ("postgresql", "mariadb") and major version
 * ("15", "10.11"), or NULL when reeve has none for it. */
const struct param_catalog *params_catalog(const char *engine, const char *version);
/* "PostgreSQL 15", "MariaDB 10.11". */
const char *params_catalog_title(const struct param_catalog *cat);
/* Its entries, sorted by lowercase name (for tests and tools). */
const struct param_def *params_catalog_defs(const struct param_catalog *cat, size_t *n);

/* The entry for name, or NULL. PostgreSQL names ignore case; MariaDB names
 * also take '-' for '_'. */
const struct param_def *params_lookup(const struct param_catalog *cat, const char *name);
/* The closest known name when name looks like a typo of it, or NULL. */
const char *params_suggest(const struct param_catalog *cat, const char *name);

enum params_verdict {
    PARAMS_OK,
    PARAMS_UNKNOWN, /* no such parameter */
    PARAMS_REFUSED, /* managed by reeve, fixed, or per-session */
    PARAMS_INVALID, /* the engine would not read the value */
    PARAMS_OUT_OF_RANGE,
};

/* Check the value of one parameter as the engine would read it. Anything
 * but PARAMS_OK writes a message into msg (without the field path), e.g.
 * "'16TB' is out of range for shared_buffers (128kB .. 8589934584kB)".
 * An engine or version without a catalog gives PARAMS_OK. */
enum params_verdict params_check(const char *engine, const char *version, const char *name,
                                 const char *value, char *msg, size_t msgsz);
/* Same, against one catalog entry. */
enum params_verdict params_check_value(const struct param_catalog *cat, const struct param_def *def,
                                       const char *value, char *msg, size_t msgsz);

/* Whether changing name on a running server needs a restart. Versions
 * without a catalog use the engine's nearest catalog (when a parameter takes
 * effect rarely changes between majors); a name no catalog knows answers
 * true, since a restart applies any change. Managed, fixed and per-session
 * names answer false: they are never applied from the spec. */
bool params_needs_restart(const char *engine, const char *version, const char *name);

#endif
