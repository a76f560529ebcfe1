/* spec.c - load DatabaseCluster and Policy files into a spec_set: parse,
 * validate against the embedded schemas, convert to typed structs with the
 * schema's defaults, run the checks a JSON Schema cannot express, and the
 * cross-file checks (duplicates, restore sources, policies).
 */
#include "spec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "doc.h"
#include "limits.h"
#include "params.h"
#include "policy.h"
#include "schema.h"

_Static_assert(RV_SPEC_FILE_MAX == 1024 * 1024, "the too-large message says 1 MiB");

/* ---------------------------------------------------------------- helpers */

struct spec_pos spec_pos_of(const struct doc_node *n)
{
    struct spec_pos p = {0, 0};
    if (n != NULL) {
        p.line = n->line;
        p.col = n->col;
    }
    return p;
}

struct spec_pos spec_key_pos(const struct doc_node *map, const char *key)
{
    const struct doc_pair *pair = map ? doc_map_get_pair(map, key) : NULL;
    return spec_pos_of(pair ? pair->key : NULL);
}

void spec_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

char **spec_strv_from_seq(const struct doc_node *seq, size_t *n)
{
    size_t len = (seq && seq->kind == DOC_SEQ) ? seq->u.seq.len : 0;
    char **v = calloc(len + 1, sizeof(*v));
    size_t k = 0;
    *n = 0;
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        const struct doc_node *e = seq->u.seq.items[i];
        if (e->kind != DOC_STRING)
            continue;
        v[k] = strdup(e->u.str.s);
        if (v[k] == NULL) {
            spec_strv_free(v);
            return NULL;
        }
        k++;
    }
    *n = k;
    return v;
}

static const struct doc_node *get(const struct doc_node *map, const char *key)
{
    if (map == NULL || map->kind != DOC_MAP)
        return NULL;
    return doc_map_get(map, key);
}

static const char *node_str(const struct doc_node *n)
{
    return (n && n->kind == DOC_STRING) ? n->u.str.s : NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* Shortest text that reads back as the same double ("0.5", "1e+20"). */
static void fmt_double(char *out, size_t size, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* Integral values of a number node clamped to [lo, hi]; dflt otherwise. */
static int64_t node_int(const struct doc_node *n, int64_t dflt, int64_t lo, int64_t hi)
{
    int64_t v = dflt;
    if (n && n->kind == DOC_INT) {
        v = n->u.i;
    } else if (n && n->kind == DOC_FLOAT && isfinite(n->u.f)) {
        double f = n->u.f;
        if (f <= (double)lo)
            v = lo;
        else if (f >= (double)hi)
            v = hi;
        else
            v = (int64_t)f;
    }
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

static double node_num(const struct doc_node *n, double dflt)
{
    if (n && n->kind == DOC_INT)
        return (double)n->u.i;
    if (n && n->kind == DOC_FLOAT && isfinite(n->u.f))
        return n->u.f;
    return dflt;
}

static bool node_bool(const struct doc_node *n, bool dflt)
{
    return (n && n->kind == DOC_BOOL) ? n->u.b : dflt;
}

/* ------------------------------------------------------------- defaults */

/* Defaults are declared once, in cluster.schema.json; the converter reads
 * them from there (test_spec checks that each one it relies on exists). */
static int64_t def_int(const struct schema *s, const char *path)
{
    const json_t *j = s ? schema_default(s, path) : NULL;
    if (json_is_integer(j))
        return (int64_t)json_integer_value(j);
    if (json_is_real(j))
        return (int64_t)json_real_value(j);
    return 0;
}

static double def_num(const struct schema *s, const char *path)
{
    const json_t *j = s ? schema_default(s, path) : NULL;
    return json_is_number(j) ? json_number_value(j) : 0.0;
}

static bool def_bool(const struct schema *s, const char *path)
{
    const json_t *j = s ? schema_default(s, path) : NULL;
    return json_is_true(j);
}

static const char *def_str(const struct schema *s, const char *path)
{
    const json_t *j = s ? schema_default(s, path) : NULL;
    return json_is_string(j) ? json_string_value(j) : NULL;
}

/* ----------------------------------------------------------- conversion */

struct conv {
    const struct schema *defaults; /* the cluster schema */
    const char *file;
    const char *prefix; /* field path of the spec body */
    struct diag_list *diags;
    bool oom;
    size_t errors;
};

static char *cv_dup(struct conv *cv, const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        cv->oom = true;
    return d;
}

static char **cv_strv(struct conv *cv, const struct doc_node *seq, size_t *n)
{
    char **v = spec_strv_from_seq(seq, n);
    if (v == NULL)
        cv->oom = true;
    return v;
}

static void cv_diag(struct conv *cv, enum diag_severity sev, struct spec_pos at, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void cv_diag(struct conv *cv, enum diag_severity sev, struct spec_pos at, const char *field,
                    const char *fmt, ...)
{
    char path[RV_FIELD_PATH_MAX];
    char msg[RV_ERROR_MSG_MAX];
    va_list ap;

    if (field && field[0])
        snprintf(path, sizeof(path), "%s.%s", cv->prefix, field);
    else
        snprintf(path, sizeof(path), "%s", cv->prefix);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (sev == DIAG_ERROR)
        cv->errors++;
    if (diag_add(cv->diags, sev, cv->file, at.line, at.col, path, "%s", msg) == RV_ENOMEM)
        cv->oom = true;
}

/* A scalar as the text an engine takes: strings as written, numbers in
 * their shortest form, booleans as the engine spells them. */
static char *cv_scalar_text(struct conv *cv, const struct doc_node *n, const char *engine)
{
    char tmp[64];
    bool mariadb = engine && strcmp(engine, "mariadb") == 0;
    bool postgresql = engine && strcmp(engine, "postgresql") == 0;

    switch (n->kind) {
    case DOC_STRING:
        return cv_dup(cv, n->u.str.s);
    case DOC_INT:
        snprintf(tmp, sizeof(tmp), "%lld", (long long)n->u.i);
        return cv_dup(cv, tmp);
    case DOC_FLOAT:
        fmt_double(tmp, sizeof(tmp), n->u.f);
        return cv_dup(cv, tmp);
    case DOC_BOOL:
        if (postgresql)
            return cv_dup(cv, n->u.b ? "on" : "off");
        if (mariadb)
            return cv_dup(cv, n->u.b ? "ON" : "OFF");
        return cv_dup(cv, n->u.b ? "true" : "false");
    default:
        return cv_dup(cv, "");
    }
}

/* A default that is an array of strings. */
static char **cv_def_strv(struct conv *cv, const char *path, size_t *n)
{
    const json_t *j = cv->defaults ? schema_default(cv->defaults, path) : NULL;
    size_t len = json_is_array(j) ? json_array_size(j) : 0;
    char **v = calloc(len + 1, sizeof(*v));
    *n = 0;
    if (v == NULL) {
        cv->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        const char *s = json_string_value(json_array_get(j, i));
        if (s == NULL)
            continue;
        v[*n] = cv_dup(cv, s);
        if (v[*n] == NULL)
            break;
        (*n)++;
    }
    return v;
}

static struct spec_kv *cv_kvs(struct conv *cv, const struct doc_node *map, size_t *n,
                              const char *engine)
{
    size_t len = (map && map->kind == DOC_MAP) ? map->u.map.len : 0;
    struct spec_kv *kv = calloc(len ? len : 1, sizeof(*kv));
    *n = 0;
    if (kv == NULL) {
        cv->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        const struct doc_pair *p = &map->u.map.items[i];
        kv[i].key = cv_dup(cv, p->key->u.str.s);
        kv[i].value = cv_scalar_text(cv, p->value, engine);
        kv[i].pos = spec_pos_of(p->key);
    }
    *n = len;
    return kv;
}

static void cv_metadata(struct conv *cv, struct spec_cluster *c, const struct doc_node *meta)
{
    const char *ns = node_str(get(meta, "namespace"));
    if (ns == NULL)
        ns = def_str(cv->defaults, "metadata.namespace");
    c->namespace_ = cv_dup(cv, ns ? ns : "default");
    c->labels = cv_kvs(cv, get(meta, "labels"), &c->nlabels, NULL);
}

static void cv_backup(struct conv *cv, struct spec_cluster *c, const struct doc_node *body)
{
    const struct schema *d = cv->defaults;
    const struct doc_node *b = get(body, "backup");
    const struct doc_node *n, *dest, *s3, *local;

    c->backup.retention_days = (int)def_int(d, "spec.backup.retention.days");
    c->backup.prefer_replica = def_bool(d, "spec.backup.preferReplica");
    if (b == NULL || b->kind != DOC_MAP)
        return;
    c->backup.enabled = true;
    c->at.backup = spec_key_pos(body, "backup");
    n = get(b, "schedule");
    c->backup.full_cron = cv_dup(cv, node_str(get(n, "full")));
    c->backup.incremental_cron = cv_dup(cv, node_str(get(n, "incremental")));
    n = get(get(b, "retention"), "days");
    c->backup.retention_days = (int)node_int(n, c->backup.retention_days, 0, INT32_MAX);
    n = get(b, "method");
    c->at.method = spec_pos_of(n);
    if (node_str(n)) {
        c->backup.method = cv_dup(cv, node_str(n));
    } else if (c->engine && strcmp(c->engine, "mariadb") == 0) {
        c->backup.method = cv_dup(cv, "mariabackup");
    } else {
        c->backup.method = cv_dup(cv, "pg_basebackup");
    }
    n = get(b, "external");
    c->backup.program = cv_dup(cv, node_str(get(n, "program")));
    if (c->backup.program)
        c->backup.program_args = cv_strv(cv, get(n, "args"), &c->backup.nprogram_args);

    dest = get(b, "destination");
    s3 = get(dest, "s3");
    local = get(dest, "local");
    if (s3 && s3->kind == DOC_MAP) {
        c->backup.dest_kind = SPEC_DEST_S3;
        c->backup.bucket = cv_dup(cv, node_str(get(s3, "bucket")));
        c->backup.prefix = cv_dup(cv, node_str(get(s3, "prefix")));
        if (c->backup.prefix == NULL && c->namespace_ && c->name) {
            /* documented default: <namespace>/<name> */
            struct buf pre = BUF_INIT;
            if (buf_printf(&pre, "%s/%s", c->namespace_, c->name) < 0)
                cv->oom = true;
            c->backup.prefix = buf_detach(&pre);
        }
        c->backup.endpoint = cv_dup(cv, node_str(get(s3, "endpoint")));
        c->backup.s3_region = cv_dup(cv, node_str(get(s3, "region")));
        if (c->backup.s3_region == NULL)
            c->backup.s3_region =
                cv_dup(cv, def_str(cv->defaults, "spec.backup.destination.s3.region"));
        c->backup.credentials_ref = cv_dup(cv, node_str(get(s3, "credentialsRef")));
    } else if (local && local->kind == DOC_MAP) {
        c->backup.dest_kind = SPEC_DEST_LOCAL;
        c->backup.local_path = cv_dup(cv, node_str(get(local, "path")));
    }
    n = get(b, "encryption");
    c->backup.encryption_key_ref = cv_dup(cv, node_str(get(n, "keyRef")));
    if (c->backup.encryption_key_ref)
        c->at.encryption = spec_key_pos(b, "encryption");
    c->backup.prefer_replica = node_bool(get(b, "preferReplica"), c->backup.prefer_replica);
}

static void cv_users(struct conv *cv, struct spec_cluster *c, const struct doc_node *seq)
{
    size_t len = (seq && seq->kind == DOC_SEQ) ? seq->u.seq.len : 0;
    if (len == 0)
        return;
    c->users = calloc(len, sizeof(*c->users));
    if (c->users == NULL) {
        cv->oom = true;
        return;
    }
    for (size_t i = 0; i < len; i++) {
        const struct doc_node *u = seq->u.seq.items[i];
        struct spec_user *su = &c->users[c->nusers++];
        su->name = cv_dup(cv, node_str(get(u, "name")));
        su->pos = spec_pos_of(get(u, "name"));
        const struct doc_node *roles = get(u, "roles");
        if (roles)
            su->roles = cv_strv(cv, roles, &su->nroles);
        else
            su->roles = cv_def_strv(cv, "spec.users[].roles", &su->nroles);
        su->password_ref = cv_dup(cv, node_str(get(u, "passwordRef")));
    }
}

/* Fill every spec field from body (the `spec` map, or a Terraform block). */
static void cv_spec(struct conv *cv, struct spec_cluster *c, const struct doc_node *body)
{
    const struct schema *d = cv->defaults;
    const struct doc_node *n, *r, *rep, *boot;

    n = get(body, "engine");
    c->engine = cv_dup(cv, node_str(n));
    c->at.engine = spec_pos_of(n);
    n = get(body, "version");
    c->version = cv_dup(cv, node_str(n));
    c->at.version = spec_pos_of(n);
    n = get(body, "provider");
    c->provider = cv_dup(cv, node_str(n));
    c->at.provider = spec_pos_of(n);
    n = get(body, "region");
    c->region = cv_dup(cv, node_str(n));
    c->at.region = spec_pos_of(n);
    n = get(body, "instances");
    c->instances = (int)node_int(n, def_int(d, "spec.instances"), 0, INT32_MAX);
    c->at.instances = spec_pos_of(n);

    r = get(body, "resources");
    n = get(r, "cpu");
    c->resources.cpu = node_num(n, def_num(d, "spec.resources.cpu"));
    c->at.cpu = spec_pos_of(n);
    n = get(r, "memoryMiB");
    c->resources.memory_mib = node_int(n, def_int(d, "spec.resources.memoryMiB"), 0, INT64_MAX);
    c->at.memory_mib = spec_pos_of(n);
    n = get(r, "storageGiB");
    c->resources.storage_gib = node_int(n, def_int(d, "spec.resources.storageGiB"), 0, INT64_MAX);
    c->at.storage_gib = spec_pos_of(n);

    c->parameters = cv_kvs(cv, get(body, "parameters"), &c->nparameters, c->engine);

    rep = get(body, "replication");
    n = get(rep, "synchronous");
    c->replication.synchronous =
        (int)node_int(n, def_int(d, "spec.replication.synchronous"), 0, INT32_MAX);
    c->at.synchronous = spec_pos_of(n);
    c->replication.max_lag_on_failover_bytes =
        node_int(get(rep, "maxLagOnFailoverBytes"),
                 def_int(d, "spec.replication.maxLagOnFailoverBytes"), 0, INT64_MAX);

    cv_backup(cv, c, body);

    n = get(get(body, "pitr"), "enabled");
    c->pitr_enabled = node_bool(n, def_bool(d, "spec.pitr.enabled"));
    c->at.pitr = n ? spec_pos_of(n) : spec_key_pos(body, "pitr");

    boot = get(get(body, "bootstrap"), "fromBackup");
    if (boot && boot->kind == DOC_MAP) {
        c->bootstrap.kind = SPEC_BOOTSTRAP_FROM_BACKUP;
        c->bootstrap.from_pos = spec_pos_of(get(boot, "cluster"));
        c->bootstrap.from_cluster = cv_dup(cv, node_str(get(boot, "cluster")));
        c->bootstrap.backup_id = cv_dup(cv, node_str(get(boot, "backupId")));
        c->bootstrap.point_in_time = cv_dup(cv, node_str(get(boot, "pointInTime")));
    }

    cv_users(cv, c, get(body, "users"));
    c->allowed_cidrs = cv_strv(cv, get(get(body, "access"), "allowedCIDRs"), &c->nallowed_cidrs);

    n = get(body, "maintenance");
    c->maintenance.window = cv_dup(cv, node_str(get(n, "window")));
    c->maintenance.upgrade = cv_dup(cv, node_str(get(n, "upgrade")));
    if (c->maintenance.upgrade == NULL)
        c->maintenance.upgrade = cv_dup(cv, def_str(d, "spec.maintenance.upgrade"));

    n = get(body, "deletionProtection");
    c->deletion_protection = node_bool(n, def_bool(d, "spec.deletionProtection"));
    c->at.deletion_protection = spec_pos_of(n);
}

/* -------------------------------------------------------- semantic checks */

/* The schema's pattern already limits each field to numbers in range,
 * '*', ranges, steps and lists; what it cannot see is checked here:
 * ranges that go backwards and steps longer than the field. The parser
 * still checks everything, as it may be handed any text. */
struct cron_field {
    const char *name;
    int lo, hi;
};

static const struct cron_field cron_fields[5] = {
    {"minute", 0, 59}, {"hour", 0, 23},       {"day of month", 1, 31},
    {"month", 1, 12},  {"day of week", 0, 7},
};

/* A decimal number in s[0..len). */
static bool cron_atom(const char *s, size_t len, long *out)
{
    long v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]) || v > 1000)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static const char cron_hint[] =
    "use a number, '*', a range such as 1-5, a list such as 1,15 or a step such as */15";

/* One cron field; on error writes a message to msg and returns false. */
static bool cron_check_field(const char *s, size_t len, const struct cron_field *f, char *msg,
                             size_t msgsz)
{
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && s[end] != ',')
            end++;
        const char *item = s + start;
        size_t ilen = end - start;
        const char *slash = memchr(item, '/', ilen);
        size_t rlen = slash ? (size_t)(slash - item) : ilen;
        long a = f->lo, b = f->hi;

        if (ilen == 0) {
            snprintf(msg, msgsz, "%s field '%.*s' has an empty list entry; %s", f->name, (int)len,
                     s, cron_hint);
            return false;
        }
        if (rlen == 1 && item[0] == '*') {
            /* the whole range */
        } else {
            const char *dash = memchr(item, '-', rlen);
            size_t alen = dash ? (size_t)(dash - item) : rlen;
            if (!cron_atom(item, alen, &a) || (dash && !cron_atom(dash + 1, rlen - alen - 1, &b))) {
                snprintf(msg, msgsz, "cannot read %s field '%.*s'; %s", f->name, (int)len, s,
                         cron_hint);
                return false;
            }
            if (!dash)
                b = slash ? f->hi : a;
            if (a < f->lo || a > f->hi || b < f->lo || b > f->hi) {
                snprintf(msg, msgsz, "%s %ld is out of range %d-%d", f->name,
                         (a < f->lo || a > f->hi) ? a : b, f->lo, f->hi);
                return false;
            }
            if (a > b) {
                snprintf(msg, msgsz,
                         "%s range %ld-%ld goes backwards; a range cannot wrap around, "
                         "use a list such as %ld-%d,%d-%ld",
                         f->name, a, b, a, f->hi, f->lo, b);
                return false;
            }
        }
        if (slash) {
            long step;
            size_t slen = ilen - rlen - 1;
            if (!cron_atom(slash + 1, slen, &step)) {
                snprintf(msg, msgsz, "cannot read %s field '%.*s'; %s", f->name, (int)len, s,
                         cron_hint);
                return false;
            }
            if (step < 1 || step > f->hi - f->lo + 1) {
                snprintf(msg, msgsz, "step %ld in the %s field must be between 1 and %d", step,
                         f->name, f->hi - f->lo + 1);
                return false;
            }
        }
        start = end + 1;
    }
    return true;
}

/* A five-field cron expression (minute hour day-of-month month day-of-week).
 * Returns true when valid; otherwise msg says what is wrong. */
static bool cron_check(const char *expr, char *msg, size_t msgsz)
{
    const char *p = expr;
    const char *start[6];
    size_t len[6];
    int n = 0;

    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (n < 6) {
            start[n] = s;
            len[n] = (size_t)(p - s);
        }
        n++;
    }
    if (n != 5) {
        snprintf(msg, msgsz,
                 "'%s' has %d field%s; a schedule has 5: minute hour day-of-month month "
                 "day-of-week, such as '0 2 * * *'",
                 expr, n, n == 1 ? "" : "s");
        return false;
    }
    for (int i = 0; i < 5; i++) {
        if (!cron_check_field(start[i], len[i], &cron_fields[i], msg, msgsz))
            return false;
    }
    return true;
}

/* An address with a prefix length, "10.0.0.0/8" or "fd00::/8". Returns
 * 0 valid, 1 valid with host bits set (a warning), -1 invalid; msg says why. */
static int cidr_check(const char *cidr, char *msg, size_t msgsz)
{
    char addr[64];
    unsigned char bytes[16];
    const char *slash = strchr(cidr, '/');
    size_t alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
    bool v6 = memchr(cidr, ':', alen) != NULL;
    int af = v6 ? AF_INET6 : AF_INET;
    long bits = v6 ? 128 : 32;
    long prefix = 0;

    bool parsed = false;
    if (alen < sizeof(addr)) {
        memcpy(addr, cidr, alen);
        addr[alen] = '\0';
        parsed = inet_pton(af, addr, bytes) == 1;
    }
    if (!parsed) {
        snprintf(msg, msgsz, "'%.*s' is not an %s address; write a network such as %s", (int)alen,
                 cidr, v6 ? "IPv6" : "IPv4", v6 ? "'fd00::/8'" : "'10.0.0.0/8'");
        return -1;
    }
    if (slash == NULL) {
        snprintf(msg, msgsz, "'%s' has no prefix length; write '%s/%ld' for this one address", cidr,
                 cidr, bits);
        return -1;
    }
    const char *p = slash + 1;
    if (*p == '\0' || strlen(p) > 3) {
        snprintf(msg, msgsz, "'%s': the prefix length must be a number from 0 to %ld", cidr, bits);
        return -1;
    }
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            snprintf(msg, msgsz, "'%s': the prefix length must be a number from 0 to %ld", cidr,
                     bits);
            return -1;
        }
        prefix = prefix * 10 + (*p - '0');
    }
    if (prefix > bits) {
        snprintf(msg, msgsz, "'%s': the prefix length must be a number from 0 to %ld", cidr, bits);
        return -1;
    }
    /* host bits past the prefix: valid, but probably not what was meant */
    size_t nbytes = v6 ? 16 : 4;
    bool host_bits = false;
    for (size_t i = 0; i < nbytes; i++) {
        long first = (long)i * 8;
        unsigned char mask;
        if (first + 8 <= prefix)
            mask = 0;
        else if (first >= prefix)
            mask = 0xff;
        else
            mask = (unsigned char)(0xffu >> (prefix - first));
        if (bytes[i] & mask) {
            host_bits = true;
            bytes[i] = (unsigned char)(bytes[i] & ~mask);
        }
    }
    if (host_bits) {
        char net[64];
        inet_ntop(af, bytes, net, sizeof(net));
        snprintf(msg, msgsz, "'%s' has bits set past its prefix length; it means '%s/%ld'", cidr,
                 net, prefix);
        return 1;
    }
    return 0;
}

static bool parse_hhmm(const char *s, int *minutes)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return false;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return false;
    *minutes = h * 60 + m;
    return true;
}

/* "Sun 02:00-04:00" or "Daily 02:00-04:00"; an end before the start runs
 * past midnight. Returns true when valid. */
static bool window_check(const char *w, char *msg, size_t msgsz)
{
    static const char *const days[] = {"Mon ", "Tue ", "Wed ", "Thu ",
                                       "Fri ", "Sat ", "Sun ", "Daily "};
    const char *p = NULL;
    int from, to;

    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]) && !p; i++) {
        if (strncmp(w, days[i], strlen(days[i])) == 0)
            p = w + strlen(days[i]);
    }
    if (p == NULL || strlen(p) != 11 || p[5] != '-' || !parse_hhmm(p, &from) ||
        !parse_hhmm(p + 6, &to))
        goto bad;
    if (from == to) {
        snprintf(msg, msgsz,
                 "window '%s' ends when it starts; give it a length (an end before the start, "
                 "as in 'Sun 23:00-01:00', runs past midnight)",
                 w);
        return false;
    }
    return true;
bad:
    snprintf(msg, msgsz,
             "cannot read window '%s'; write a day (Mon to Sun, or Daily) and a time range in "
             "UTC, such as 'Sun 02:00-04:00'",
             w);
    return false;
}

static void check_cron(struct conv *cv, const struct doc_node *n, const char *field)
{
    char msg[RV_ERROR_MSG_MAX];
    const char *s = node_str(n);
    if (s && !cron_check(s, msg, sizeof(msg)))
        cv_diag(cv, DIAG_ERROR, spec_pos_of(n), field, "%s", msg);
}

/* spec.parameters against the engine's catalog (params.h): an unknown or
 * refused name is an error at its key, a value the engine would not take
 * one at the value. Versions without a catalog are not checked. */
static void check_parameters(struct conv *cv, const struct spec_cluster *c,
                             const struct doc_node *map)
{
    char msg[RV_ERROR_MSG_MAX];
    char field[RV_FIELD_PATH_MAX];
    if (map == NULL || map->kind != DOC_MAP || params_catalog(c->engine, c->version) == NULL)
        return;
    for (size_t i = 0; i < map->u.map.len && i < c->nparameters; i++) {
        const struct doc_pair *p = &map->u.map.items[i];
        const struct spec_kv *kv = &c->parameters[i];
        enum params_verdict v;
        if (kv->key == NULL || kv->value == NULL)
            continue;
        v = params_check(c->engine, c->version, kv->key, kv->value, msg, sizeof(msg));
        if (v == PARAMS_OK)
            continue;
        if (strchr(kv->key, '.'))
            snprintf(field, sizeof(field), "parameters[\"%s\"]", kv->key);
        else
            snprintf(field, sizeof(field), "parameters.%s", kv->key);
        cv_diag(cv, DIAG_ERROR,
                (v == PARAMS_UNKNOWN || v == PARAMS_REFUSED) ? spec_pos_of(p->key)
                                                             : spec_pos_of(p->value),
                field, "%s", msg);
    }
}

/* The checks a JSON Schema cannot express, on a converted cluster whose
 * document passed the schema. body gives the positions. */
static void cluster_check(struct conv *cv, const struct spec_cluster *c,
                          const struct doc_node *body)
{
    char msg[RV_ERROR_MSG_MAX];
    char field[RV_FIELD_PATH_MAX];
    const struct doc_node *b = get(body, "backup");

    if (c->replication.synchronous > 0 && c->replication.synchronous >= c->instances) {
        cv_diag(cv, DIAG_ERROR, c->at.synchronous, "replication.synchronous",
                "must be less than %s.instances (%d): a synchronous standby needs a replica",
                cv->prefix, c->instances);
    }

    if (b) {
        const struct doc_node *sched = get(b, "schedule");
        check_cron(cv, get(sched, "full"), "backup.schedule.full");
        check_cron(cv, get(sched, "incremental"), "backup.schedule.incremental");
    }

    for (size_t i = 0; i < c->nusers; i++) {
        for (size_t j = 0; j < i; j++) {
            if (c->users[i].name && c->users[j].name &&
                strcmp(c->users[i].name, c->users[j].name) == 0) {
                snprintf(field, sizeof(field), "users[%zu].name", i);
                cv_diag(cv, DIAG_ERROR, c->users[i].pos, field,
                        "user '%s' is already defined at line %u (%s.users[%zu]); each user "
                        "name must appear once",
                        c->users[i].name, c->users[j].pos.line, cv->prefix, j);
                break;
            }
        }
    }

    const struct doc_node *cidrs = get(get(body, "access"), "allowedCIDRs");
    for (size_t i = 0; cidrs && cidrs->kind == DOC_SEQ && i < cidrs->u.seq.len; i++) {
        const struct doc_node *e = cidrs->u.seq.items[i];
        int rc;
        if (e->kind != DOC_STRING)
            continue;
        rc = cidr_check(e->u.str.s, msg, sizeof(msg));
        if (rc != 0) {
            snprintf(field, sizeof(field), "access.allowedCIDRs[%zu]", i);
            cv_diag(cv, rc < 0 ? DIAG_ERROR : DIAG_WARNING, spec_pos_of(e), field, "%s", msg);
        }
    }

    if (c->maintenance.window && !window_check(c->maintenance.window, msg, sizeof(msg))) {
        cv_diag(cv, DIAG_ERROR, spec_pos_of(get(get(body, "maintenance"), "window")),
                "maintenance.window", "%s", msg);
    }

    check_parameters(cv, c, get(body, "parameters"));
}

/* ---------------------------------------------------------------- digest */

struct jfail {
    bool fail;
};

static json_t *jstr(struct jfail *f, const char *s)
{
    json_t *j = json_string(s ? s : "");
    if (j == NULL)
        f->fail = true;
    return j;
}

static json_t *jint(struct jfail *f, int64_t v)
{
    json_t *j = json_integer((json_int_t)v);
    if (j == NULL)
        f->fail = true;
    return j;
}

static json_t *jobj(struct jfail *f)
{
    json_t *j = json_object();
    if (j == NULL)
        f->fail = true;
    return j;
}

static void jset(struct jfail *f, json_t *obj, const char *key, json_t *v)
{
    if (obj == NULL || v == NULL || json_object_set_new(obj, key, v) != 0) {
        json_decref(v);
        f->fail = true;
    }
}

static void jset_str(struct jfail *f, json_t *obj, const char *key, const char *s)
{
    if (s)
        jset(f, obj, key, jstr(f, s));
}

static json_t *jstrv(struct jfail *f, char *const *v, size_t n)
{
    json_t *a = json_array();
    if (a == NULL) {
        f->fail = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = jstr(f, v[i]);
        if (s == NULL || json_array_append_new(a, s) != 0)
            f->fail = true;
    }
    return a;
}

static json_t *jkvs(struct jfail *f, const struct spec_kv *kv, size_t n)
{
    json_t *o = jobj(f);
    for (size_t i = 0; i < n; i++)
        jset(f, o, kv[i].key, jstr(f, kv[i].value));
    return o;
}

static json_t *jbackup(struct jfail *f, const struct spec_cluster *c)
{
    json_t *b = jobj(f), *sched = jobj(f), *ret = jobj(f), *dest = jobj(f);

    jset_str(f, sched, "full", c->backup.full_cron);
    jset_str(f, sched, "incremental", c->backup.incremental_cron);
    jset(f, b, "schedule", sched);
    jset(f, ret, "days", jint(f, c->backup.retention_days));
    jset(f, b, "retention", ret);
    jset_str(f, b, "method", c->backup.method);
    if (c->backup.program) {
        json_t *ext = jobj(f);
        jset_str(f, ext, "program", c->backup.program);
        jset(f, ext, "args", jstrv(f, c->backup.program_args, c->backup.nprogram_args));
        jset(f, b, "external", ext);
    }
    if (c->backup.dest_kind == SPEC_DEST_S3) {
        json_t *s3 = jobj(f);
        jset_str(f, s3, "bucket", c->backup.bucket);
        jset_str(f, s3, "prefix", c->backup.prefix);
        jset_str(f, s3, "endpoint", c->backup.endpoint);
        jset_str(f, s3, "region", c->backup.s3_region);
        jset_str(f, s3, "credentialsRef", c->backup.credentials_ref);
        jset(f, dest, "s3", s3);
    } else if (c->backup.dest_kind == SPEC_DEST_LOCAL) {
        json_t *local = jobj(f);
        jset_str(f, local, "path", c->backup.local_path);
        jset(f, dest, "local", local);
    }
    jset(f, b, "destination", dest);
    if (c->backup.encryption_key_ref) {
        json_t *enc = jobj(f);
        jset_str(f, enc, "keyRef", c->backup.encryption_key_ref);
        jset(f, b, "encryption", enc);
    }
    jset(f, b, "preferReplica", json_boolean(c->backup.prefer_replica));
    return b;
}

json_t *spec_cluster_to_json(const struct spec_cluster *c)
{
    struct jfail f = {false};
    json_t *doc = jobj(&f), *meta = jobj(&f), *spec = jobj(&f);
    json_t *res = jobj(&f), *rep = jobj(&f), *pitr = jobj(&f), *boot = jobj(&f);

    jset(&f, doc, "apiVersion", jstr(&f, "reeve/v1"));
    jset(&f, doc, "kind", jstr(&f, "DatabaseCluster"));
    jset_str(&f, meta, "name", c->name);
    jset_str(&f, meta, "namespace", c->namespace_);
    if (c->nlabels)
        jset(&f, meta, "labels", jkvs(&f, c->labels, c->nlabels));
    jset(&f, doc, "metadata", meta);

    jset_str(&f, spec, "engine", c->engine);
    jset_str(&f, spec, "version", c->version);
    jset_str(&f, spec, "provider", c->provider);
    jset_str(&f, spec, "region", c->region);
    jset(&f, spec, "instances", jint(&f, c->instances));
    if (c->resources.cpu == floor(c->resources.cpu) && fabs(c->resources.cpu) < 1e15)
        jset(&f, res, "cpu", jint(&f, (int64_t)c->resources.cpu));
    else
        jset(&f, res, "cpu", json_real(c->resources.cpu));
    jset(&f, res, "memoryMiB", jint(&f, c->resources.memory_mib));
    jset(&f, res, "storageGiB", jint(&f, c->resources.storage_gib));
    jset(&f, spec, "resources", res);
    if (c->nparameters)
        jset(&f, spec, "parameters", jkvs(&f, c->parameters, c->nparameters));
    jset(&f, rep, "synchronous", jint(&f, c->replication.synchronous));
    jset(&f, rep, "maxLagOnFailoverBytes", jint(&f, c->replication.max_lag_on_failover_bytes));
    jset(&f, spec, "replication", rep);
    if (c->backup.enabled)
        jset(&f, spec, "backup", jbackup(&f, c));
    jset(&f, pitr, "enabled", json_boolean(c->pitr_enabled));
    jset(&f, spec, "pitr", pitr);
    if (c->bootstrap.kind == SPEC_BOOTSTRAP_FROM_BACKUP) {
        json_t *fb = jobj(&f);
        jset_str(&f, fb, "cluster", c->bootstrap.from_cluster);
        jset_str(&f, fb, "backupId", c->bootstrap.backup_id);
        jset_str(&f, fb, "pointInTime", c->bootstrap.point_in_time);
        jset(&f, boot, "fromBackup", fb);
    } else {
        jset(&f, boot, "initdb", jobj(&f));
    }
    jset(&f, spec, "bootstrap", boot);
    if (c->nusers) {
        json_t *users = json_array();
        if (users == NULL)
            f.fail = true;
        for (size_t i = 0; users && i < c->nusers; i++) {
            json_t *u = jobj(&f);
            jset_str(&f, u, "name", c->users[i].name);
            jset(&f, u, "roles", jstrv(&f, c->users[i].roles, c->users[i].nroles));
            jset_str(&f, u, "passwordRef", c->users[i].password_ref);
            if (u == NULL || json_array_append_new(users, u) != 0)
                f.fail = true;
        }
        jset(&f, spec, "users", users);
    }
    if (c->nallowed_cidrs) {
        json_t *access = jobj(&f);
        jset(&f, access, "allowedCIDRs", jstrv(&f, c->allowed_cidrs, c->nallowed_cidrs));
        jset(&f, spec, "access", access);
    }
    if (c->maintenance.window || c->maintenance.upgrade) {
        json_t *m = jobj(&f);
        jset_str(&f, m, "window", c->maintenance.window);
        jset_str(&f, m, "upgrade", c->maintenance.upgrade);
        jset(&f, spec, "maintenance", m);
    }
    jset(&f, spec, "deletionProtection", json_boolean(c->deletion_protection));
    jset(&f, doc, "spec", spec);

    if (f.fail) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* The digest is the SHA-256 of the text json_dumps(spec_cluster_to_json(c),
 * JSON_SORT_KEYS | JSON_COMPACT) gives, written straight into the hash
 * instead of building and dumping a jansson tree for every cluster: keys in
 * strcmp order, strings escaped as jansson escapes them, integers in
 * decimal, the one real (a fractional cpu) formatted by jansson itself.
 * test_spec checks the two stay byte for byte the same. */
struct canon {
    struct crypto_sha256_ctx sha;
    int rc;
    size_t len;
    char buf[2048];
};

static void cn_flush(struct canon *w)
{
    if (w->rc == 0 && w->len > 0)
        w->rc = crypto_sha256_update(&w->sha, w->buf, w->len);
    w->len = 0;
}

static void cn_put(struct canon *w, const char *s, size_t n)
{
    while (n > 0) {
        if (w->len == sizeof(w->buf))
            cn_flush(w);
        size_t k = sizeof(w->buf) - w->len < n ? sizeof(w->buf) - w->len : n;
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
}

static void cn_putc(struct canon *w, char ch)
{
    if (w->len == sizeof(w->buf))
        cn_flush(w);
    w->buf[w->len++] = ch;
}

static void cn_puts(struct canon *w, const char *s)
{
    cn_put(w, s, strlen(s));
}

/* A JSON string; NULL is written as "" (as jstr() does). */
static void cn_str(struct canon *w, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *run = s ? s : "", *p = run;
    cn_putc(w, '"');
    for (;;) {
        unsigned char ch;
        while ((ch = (unsigned char)*p) >= 0x20 && ch != '"' && ch != '\\')
            p++;
        cn_put(w, run, (size_t)(p - run));
        if (ch == '\0')
            break;
        char esc[6] = {'\\', (char)ch, 0, 0, 0, 0}; /* \" and \\ */
        size_t elen = 2;
        if (ch == '\b' || ch == '\f' || ch == '\n' || ch == '\r' || ch == '\t') {
            esc[1] = ch == '\b'   ? 'b'
                     : ch == '\f' ? 'f'
                     : ch == '\n' ? 'n'
                     : ch == '\r' ? 'r'
                                  : 't';
        } else if (ch < 0x20) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
        }
        cn_put(w, esc, elen);
        run = ++p;
    }
    cn_putc(w, '"');
}

/* ,"key": (no comma before the first member of an object) */
static void cn_key(struct canon *w, bool *first, const char *key)
{
    if (!*first)
        cn_putc(w, ',');
    *first = false;
    cn_str(w, key);
    cn_putc(w, ':');
}

static void cn_key_str(struct canon *w, bool *first, const char *key, const char *value)
{
    if (value == NULL)
        return;
    cn_key(w, first, key);
    cn_str(w, value);
}

static void cn_int(struct canon *w, int64_t v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    cn_put(w, num, (size_t)n);
}

static void cn_bool(struct canon *w, bool v)
{
    cn_puts(w, v ? "true" : "false");
}

static void cn_strv(struct canon *w, char *const *v, size_t n)
{
    cn_putc(w, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            cn_putc(w, ',');
        cn_str(w, v[i]);
    }
    cn_putc(w, ']');
}

static int kv_ptr_cmp(const void *pa, const void *pb)
{
    const struct spec_kv *a = *(const struct spec_kv *const *)pa;
    const struct spec_kv *b = *(const struct spec_kv *const *)pb;
    return strcmp(a->key, b->key);
}

static void cn_kvs(struct canon *w, const struct spec_kv *kv, size_t n)
{
    const struct spec_kv **sorted = calloc(n ? n : 1, sizeof(*sorted));
    bool first = true;
    if (sorted == NULL) {
        w->rc = RV_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = &kv[i];
    qsort(sorted, n, sizeof(*sorted), kv_ptr_cmp);
    cn_putc(w, '{');
    for (size_t i = 0; i < n; i++) {
        cn_key(w, &first, sorted[i]->key);
        cn_str(w, sorted[i]->value);
    }
    cn_putc(w, '}');
    free(sorted);
}

static void cn_cpu(struct canon *w, double cpu)
{
    if (cpu == floor(cpu) && fabs(cpu) < 1e15) {
        cn_int(w, (int64_t)cpu);
        return;
    }
    json_t *r = json_real(cpu);
    char *text = r ? json_dumps(r, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (text == NULL)
        w->rc = RV_ENOMEM;
    else
        cn_puts(w, text);
    free(text);
    json_decref(r);
}

static void cn_backup(struct canon *w, const struct spec_cluster *c)
{
    bool first = true, f2;

    cn_putc(w, '{');
    cn_key(w, &first, "destination");
    cn_putc(w, '{');
    f2 = true;
    if (c->backup.dest_kind == SPEC_DEST_LOCAL) {
        bool f3 = true;
        cn_key(w, &f2, "local");
        cn_putc(w, '{');
        cn_key_str(w, &f3, "path", c->backup.local_path);
        cn_putc(w, '}');
    } else if (c->backup.dest_kind == SPEC_DEST_S3) {
        bool f3 = true;
        cn_key(w, &f2, "s3");
        cn_putc(w, '{');
        cn_key_str(w, &f3, "bucket", c->backup.bucket);
        cn_key_str(w, &f3, "credentialsRef", c->backup.credentials_ref);
        cn_key_str(w, &f3, "endpoint", c->backup.endpoint);
        cn_key_str(w, &f3, "prefix", c->backup.prefix);
        cn_key_str(w, &f3, "region", c->backup.s3_region);
        cn_putc(w, '}');
    }
    cn_putc(w, '}');
    if (c->backup.encryption_key_ref) {
        f2 = true;
        cn_key(w, &first, "encryption");
        cn_putc(w, '{');
        cn_key_str(w, &f2, "keyRef", c->backup.encryption_key_ref);
        cn_putc(w, '}');
    }
    if (c->backup.program) {
        f2 = true;
        cn_key(w, &first, "external");
        cn_putc(w, '{');
        cn_key(w, &f2, "args");
        cn_strv(w, c->backup.program_args, c->backup.nprogram_args);
        cn_key_str(w, &f2, "program", c->backup.program);
        cn_putc(w, '}');
    }
    cn_key_str(w, &first, "method", c->backup.method);
    cn_key(w, &first, "preferReplica");
    cn_bool(w, c->backup.prefer_replica);
    cn_key(w, &first, "retention");
    cn_puts(w, "{\"days\":");
    cn_int(w, c->backup.retention_days);
    cn_putc(w, '}');
    cn_key(w, &first, "schedule");
    cn_putc(w, '{');
    f2 = true;
    cn_key_str(w, &f2, "full", c->backup.full_cron);
    cn_key_str(w, &f2, "incremental", c->backup.incremental_cron);
    cn_putc(w, '}');
    cn_putc(w, '}');
}

static void cn_spec(struct canon *w, const struct spec_cluster *c)
{
    bool first = true, f2;

    cn_putc(w, '{');
    if (c->nallowed_cidrs) {
        cn_key(w, &first, "access");
        cn_puts(w, "{\"allowedCIDRs\":");
        cn_strv(w, c->allowed_cidrs, c->nallowed_cidrs);
        cn_putc(w, '}');
    }
    if (c->backup.enabled) {
        cn_key(w, &first, "backup");
        cn_backup(w, c);
    }
    cn_key(w, &first, "bootstrap");
    if (c->bootstrap.kind == SPEC_BOOTSTRAP_FROM_BACKUP) {
        f2 = true;
        cn_puts(w, "{\"fromBackup\":{");
        cn_key_str(w, &f2, "backupId", c->bootstrap.backup_id);
        cn_key_str(w, &f2, "cluster", c->bootstrap.from_cluster);
        cn_key_str(w, &f2, "pointInTime", c->bootstrap.point_in_time);
        cn_puts(w, "}}");
    } else {
        cn_puts(w, "{\"initdb\":{}}");
    }
    cn_key(w, &first, "deletionProtection");
    cn_bool(w, c->deletion_protection);
    cn_key_str(w, &first, "engine", c->engine);
    cn_key(w, &first, "instances");
    cn_int(w, c->instances);
    if (c->maintenance.window || c->maintenance.upgrade) {
        f2 = true;
        cn_key(w, &first, "maintenance");
        cn_putc(w, '{');
        cn_key_str(w, &f2, "upgrade", c->maintenance.upgrade);
        cn_key_str(w, &f2, "window", c->maintenance.window);
        cn_putc(w, '}');
    }
    if (c->nparameters) {
        cn_key(w, &first, "parameters");
        cn_kvs(w, c->parameters, c->nparameters);
    }
    cn_key(w, &first, "pitr");
    cn_puts(w, "{\"enabled\":");
    cn_bool(w, c->pitr_enabled);
    cn_putc(w, '}');
    cn_key_str(w, &first, "provider", c->provider);
    cn_key_str(w, &first, "region", c->region);
    cn_key(w, &first, "replication");
    cn_puts(w, "{\"maxLagOnFailoverBytes\":");
    cn_int(w, c->replication.max_lag_on_failover_bytes);
    cn_puts(w, ",\"synchronous\":");
    cn_int(w, c->replication.synchronous);
    cn_putc(w, '}');
    cn_key(w, &first, "resources");
    cn_puts(w, "{\"cpu\":");
    cn_cpu(w, c->resources.cpu);
    cn_puts(w, ",\"memoryMiB\":");
    cn_int(w, c->resources.memory_mib);
    cn_puts(w, ",\"storageGiB\":");
    cn_int(w, c->resources.storage_gib);
    cn_putc(w, '}');
    if (c->nusers) {
        cn_key(w, &first, "users");
        cn_putc(w, '[');
        for (size_t i = 0; i < c->nusers; i++) {
            const struct spec_user *u = &c->users[i];
            f2 = true;
            if (i > 0)
                cn_putc(w, ',');
            cn_putc(w, '{');
            cn_key_str(w, &f2, "name", u->name);
            cn_key_str(w, &f2, "passwordRef", u->password_ref);
            cn_key(w, &f2, "roles");
            cn_strv(w, u->roles, u->nroles);
            cn_putc(w, '}');
        }
        cn_putc(w, ']');
    }
    cn_key_str(w, &first, "version", c->version);
    cn_putc(w, '}');
}

static int cluster_digest(struct spec_cluster *c)
{
    uint8_t md[CRYPTO_SHA256_LEN];
    struct canon *w = malloc(sizeof(*w));
    bool first = true;
    int rc;

    if (w == NULL)
        return RV_ENOMEM;
    w->len = 0;
    w->rc = crypto_sha256_init(&w->sha);
    cn_puts(w, "{\"apiVersion\":\"reeve/v1\",\"kind\":\"DatabaseCluster\",\"metadata\":{");
    if (c->nlabels) {
        cn_key(w, &first, "labels");
        cn_kvs(w, c->labels, c->nlabels);
    }
    cn_key_str(w, &first, "name", c->name);
    cn_key_str(w, &first, "namespace", c->namespace_);
    cn_puts(w, "},\"spec\":");
    cn_spec(w, c);
    cn_putc(w, '}');
    cn_flush(w);
    rc = w->rc;
    if (rc == 0)
        rc = crypto_sha256_final(md, &w->sha);
    if (rc == 0)
        rc = crypto_hex_encode(c->digest, sizeof(c->digest), md, sizeof(md));
    crypto_sha256_release(&w->sha);
    free(w);
    return rc;
}

/* -------------------------------------------------------------- lifetime */

static void kvs_free(struct spec_kv *kv, size_t n)
{
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void spec_cluster_free(struct spec_cluster *c)
{
    if (c == NULL)
        return;
    free(c->file);
    free(c->name);
    free(c->namespace_);
    kvs_free(c->labels, c->nlabels);
    free(c->engine);
    free(c->version);
    free(c->provider);
    free(c->region);
    kvs_free(c->parameters, c->nparameters);
    free(c->backup.full_cron);
    free(c->backup.incremental_cron);
    free(c->backup.method);
    free(c->backup.program);
    spec_strv_free(c->backup.program_args);
    free(c->backup.bucket);
    free(c->backup.prefix);
    free(c->backup.endpoint);
    free(c->backup.s3_region);
    free(c->backup.credentials_ref);
    free(c->backup.local_path);
    free(c->backup.encryption_key_ref);
    free(c->bootstrap.from_cluster);
    free(c->bootstrap.backup_id);
    free(c->bootstrap.point_in_time);
    for (size_t i = 0; c->users && i < c->nusers; i++) {
        free(c->users[i].name);
        spec_strv_free(c->users[i].roles);
        free(c->users[i].password_ref);
    }
    free(c->users);
    spec_strv_free(c->allowed_cidrs);
    free(c->maintenance.window);
    free(c->maintenance.upgrade);
    free(c->field_prefix);
    free(c->name_path);
    free(c);
}

void spec_policy_free(struct spec_policy *p)
{
    if (p == NULL)
        return;
    free(p->file);
    free(p->name);
    spec_strv_free(p->namespaces);
    for (size_t i = 0; p->engines && i < p->nengines; i++) {
        free(p->engines[i].engine);
        spec_strv_free(p->engines[i].versions);
    }
    free(p->engines);
    spec_strv_free(p->providers);
    spec_strv_free(p->regions);
    free(p);
}

void spec_set_init(struct spec_set *set)
{
    memset(set, 0, sizeof(*set));
}

void spec_set_release(struct spec_set *set)
{
    for (size_t i = 0; i < set->nclusters; i++)
        spec_cluster_free(set->clusters[i]);
    free(set->clusters);
    for (size_t i = 0; i < set->npolicies; i++)
        spec_policy_free(set->policies[i]);
    free(set->policies);
    for (size_t i = 0; i < set->nfiles; i++)
        free(set->files[i]);
    free(set->files);
    spec_set_init(set);
}

/* Make room for item n of the array at *arrp (elem bytes an item). The
 * arrays carry no capacity field: the allocation holds at least P(n) items,
 * P(n) being the smallest power of two >= max(n, 4), and doubles when n
 * reaches such a power. Removing items only lowers n, which keeps that true.
 * The pointer is read and written with memcpy so that any array type can
 * come through one function. */
static int array_reserve(void *arrp, size_t n, size_t elem)
{
    void *arr, *grown;
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return 0;
    memcpy(&arr, arrp, sizeof(arr));
    grown = realloc(arr, (n == 0 ? 4 : n * 2) * elem);
    if (grown == NULL)
        return RV_ENOMEM;
    memcpy(arrp, &grown, sizeof(grown));
    return 0;
}

/* ------------------------------------------------------------- documents */

/* Build one cluster from a schema-valid document and add it to the set. */
static int add_cluster(struct spec_set *set, struct conv *cv, const struct doc_node *root,
                       const struct doc_node *meta, const struct doc_node *body, const char *label,
                       const struct doc_node *label_key)
{
    int rc = RV_ENOMEM;
    struct spec_cluster *c = calloc(1, sizeof(*c));
    struct buf prefix = BUF_INIT;

    if (c == NULL)
        goto out;
    c->file = cv_dup(cv, cv->file);
    c->pos = spec_pos_of(root);
    if (label) {
        const char *name = node_str(get(body, "name"));
        c->from_terraform = true;
        if (buf_printf(&prefix, "resource.reeve_database_cluster.%s", label) < 0)
            goto out;
        c->field_prefix = cv_dup(cv, prefix.data);
        c->name_path = cv_dup(cv, prefix.data);
        c->name = cv_dup(cv, name ? name : label);
        c->name_pos = spec_pos_of(label_key);
        c->at.spec = spec_pos_of(label_key);
    } else {
        c->field_prefix = cv_dup(cv, "spec");
        c->name_path = cv_dup(cv, "metadata.name");
        c->name = cv_dup(cv, node_str(get(meta, "name")));
        c->name_pos = spec_pos_of(get(meta, "name"));
        c->at.spec = spec_key_pos(root, "spec");
    }
    if (cv->oom)
        goto out;
    cv->prefix = c->field_prefix;
    cv_metadata(cv, c, meta);
    cv_spec(cv, c, body);
    if (cv->oom)
        goto out;
    cluster_check(cv, c, body);
    rc = cluster_digest(c);
    if (rc < 0)
        goto out;
    rc =
        cv->oom ? RV_ENOMEM : array_reserve(&set->clusters, set->nclusters, sizeof(*set->clusters));
    if (rc == 0) {
        set->clusters[set->nclusters++] = c;
        c = NULL;
    }
out:
    cv->prefix = "spec";
    buf_release(&prefix);
    spec_cluster_free(c);
    return rc;
}

/* A *.tf.json file: one cluster per resource.reeve_database_cluster.<label>. */
static int add_terraform(struct spec_set *set, struct conv *cv, const struct doc_node *root)
{
    const struct doc_node *blocks = get(get(root, "resource"), "reeve_database_cluster");
    size_t n = (blocks && blocks->kind == DOC_MAP) ? blocks->u.map.len : 0;

    /* the schema requires at least one block */
    for (size_t i = 0; i < n; i++) {
        const struct doc_pair *p = &blocks->u.map.items[i];
        int rc = add_cluster(set, cv, p->value, p->value, p->value, p->key->u.str.s, p->key);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* True (and an error added) when a document's kind belongs in the other
 * folder; such a document is not validated further. */
static bool wrong_folder(enum spec_file_kind kind, const char *file, const struct doc_node *doc,
                         struct diag_list *diags)
{
    const struct doc_node *k = get(doc, "kind");
    const char *s = node_str(k);
    if (s == NULL)
        return false;
    if (kind == SPEC_FILE_CLUSTERS && strcmp(s, "Policy") == 0) {
        diag_add(diags, DIAG_ERROR, file, k->line, k->col, "kind",
                 "a Policy document must be in a file under policies/; move it there");
        return true;
    }
    if (kind == SPEC_FILE_POLICIES && strcmp(s, "DatabaseCluster") == 0) {
        diag_add(diags, DIAG_ERROR, file, k->line, k->col, "kind",
                 "a DatabaseCluster document must be in a file under clusters/; move it there");
        return true;
    }
    return false;
}

static int record_file(struct spec_set *set, const char *display_path)
{
    char *copy = strdup(display_path);
    if (copy == NULL)
        return RV_ENOMEM;
    int rc = array_reserve(&set->files, set->nfiles, sizeof(*set->files));
    if (rc < 0)
        free(copy);
    else
        set->files[set->nfiles++] = copy;
    return rc;
}

static int add_parsed(struct spec_set *set, enum spec_file_kind kind, const char *file,
                      bool terraform, struct doc_file *df, struct diag_list *diags)
{
    struct rv_error err;
    const struct schema *cluster_schema = schema_get(SCHEMA_CLUSTER, &err);
    const struct schema *schema = NULL;
    struct conv cv = {cluster_schema, file, "spec", diags, false, 0};
    size_t ndocs = 0;
    int rc = 0;

    rv_error_clear(&err);
    if (cluster_schema)
        schema = schema_get(terraform                    ? SCHEMA_CLUSTER_TF
                            : kind == SPEC_FILE_POLICIES ? SCHEMA_POLICY
                                                         : SCHEMA_CLUSTER,
                            &err);
    if (schema == NULL) {
        diag_add(diags, DIAG_ERROR, file, 0, 0, "", "internal error: %s",
                 err.msg[0] ? err.msg : "schema not available");
        rc = RV_EINTERNAL;
        goto out;
    }
    if (terraform && kind == SPEC_FILE_POLICIES) {
        diag_add(diags, DIAG_ERROR, file, 0, 0, "",
                 "a Terraform JSON file holds clusters, not policies; move it under clusters/");
        goto out;
    }
    for (size_t i = 0; i < df->ndocs; i++) {
        const struct doc_node *doc = df->docs[i];
        if (doc == NULL || doc->kind == DOC_NULL)
            continue; /* "---" with nothing after it */
        ndocs++;
        if (!terraform && wrong_folder(kind, file, doc, diags))
            continue;
        if (schema_validate(schema, doc, file, "", diags) > 0)
            continue;
        if (terraform) {
            rc = add_terraform(set, &cv, doc);
        } else if (kind == SPEC_FILE_POLICIES) {
            struct spec_policy *p = NULL;
            rc = policy_from_doc(&p, doc, file, diags);
            if (rc == 0) {
                rc = array_reserve(&set->policies, set->npolicies, sizeof(*set->policies));
                if (rc == 0)
                    set->policies[set->npolicies++] = p;
                else
                    spec_policy_free(p);
            }
        } else {
            rc = add_cluster(set, &cv, doc, get(doc, "metadata"), get(doc, "spec"), NULL, NULL);
        }
        if (rc < 0)
            goto out;
    }
    if (ndocs == 0) {
        diag_add(diags, DIAG_ERROR, file, 0, 0, "",
                 "the file is empty; write a %s document in it, or delete it",
                 kind == SPEC_FILE_POLICIES ? "Policy" : "DatabaseCluster");
    }
out:
    return rc;
}

static int add_data(struct spec_set *set, enum spec_file_kind kind, const char *display_path,
                    const char *name, const char *data, size_t len, struct diag_list *diags)
{
    bool json = ends_with(name, ".json");
    bool terraform = ends_with(name, ".tf.json");
    struct doc_file *df = NULL;
    int rc = record_file(set, display_path);

    if (rc < 0)
        goto out;
    rc = doc_parse(&df, json ? DOC_FORMAT_JSON : DOC_FORMAT_YAML, display_path, data, len, diags);
    if (rc < 0) {
        rc = rc == RV_ENOMEM ? RV_ENOMEM : 0; /* the parser reported the problem */
        goto out;
    }
    rc = add_parsed(set, kind, display_path, terraform, df, diags);
out:
    doc_file_free(df);
    return rc;
}

int spec_set_add_buffer(struct spec_set *set, enum spec_file_kind kind, const char *display_path,
                        const char *data, size_t len, struct diag_list *diags)
{
    return add_data(set, kind, display_path, display_path, data, len, diags);
}

/* strerror, lowercased for messages ("no such file or directory"). */
static void errno_text(char *out, size_t size, int e)
{
    snprintf(out, size, "%s", strerror(e));
    if (out[0])
        out[0] = (char)tolower((unsigned char)out[0]);
}

int spec_set_add_file(struct spec_set *set, enum spec_file_kind kind, const char *fs_path,
                      const char *display_path, struct diag_list *diags)
{
    char etext[128];
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    int rc = RV_EIO;
    int fd = open(fs_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) != 0) {
        errno_text(etext, sizeof(etext), errno);
        diag_add(diags, DIAG_ERROR, "", 0, 0, "", "cannot read '%s': %s", display_path, etext);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        diag_add(diags, DIAG_ERROR, display_path, 0, 0, "",
                 "not a regular file; name a spec file or a directory of them");
        goto out;
    }
    if (st.st_size > RV_SPEC_FILE_MAX) {
        diag_add(diags, DIAG_ERROR, display_path, 0, 0, "",
                 "the file is %lld bytes, over the limit of %d bytes (1 MiB) for one spec "
                 "file; split it into several files",
                 (long long)st.st_size, RV_SPEC_FILE_MAX);
        rc = 0;
        if (record_file(set, display_path) < 0)
            rc = RV_ENOMEM;
        goto out;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    while (len <= (size_t)RV_SPEC_FILE_MAX) {
        ssize_t r = read(fd, data + len, (size_t)st.st_size + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            errno_text(etext, sizeof(etext), errno);
            diag_add(diags, DIAG_ERROR, "", 0, 0, "", "cannot read '%s': %s", display_path, etext);
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == (size_t)st.st_size + 1)
            break; /* grew while we read; parse what the limit allows */
    }
    if (len > (size_t)st.st_size)
        len = (size_t)st.st_size;
    rc = add_data(set, kind, display_path, fs_path, data, len, diags);
out:
    free(data);
    if (fd >= 0)
        close(fd);
    return rc;
}

void spec_set_remove_file(struct spec_set *set, const char *display_path)
{
    size_t k = 0;
    for (size_t i = 0; i < set->nclusters; i++) {
        if (strcmp(set->clusters[i]->file, display_path) == 0)
            spec_cluster_free(set->clusters[i]);
        else
            set->clusters[k++] = set->clusters[i];
    }
    set->nclusters = k;
    k = 0;
    for (size_t i = 0; i < set->npolicies; i++) {
        if (strcmp(set->policies[i]->file, display_path) == 0)
            spec_policy_free(set->policies[i]);
        else
            set->policies[k++] = set->policies[i];
    }
    set->npolicies = k;
    k = 0;
    for (size_t i = 0; i < set->nfiles; i++) {
        if (strcmp(set->files[i], display_path) == 0)
            free(set->files[i]);
        else
            set->files[k++] = set->files[i];
    }
    set->nfiles = k;
}

/* ------------------------------------------------------------------ walk */

enum spec_file_kind spec_file_kind_of(const char *path)
{
    enum spec_file_kind kind = SPEC_FILE_CLUSTERS;
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        if (slash == NULL)
            break; /* the last component is the file itself */
        size_t len = (size_t)(slash - p);
        if (len == 8 && strncmp(p, "policies", 8) == 0)
            kind = SPEC_FILE_POLICIES;
        else if (len == 8 && strncmp(p, "clusters", 8) == 0)
            kind = SPEC_FILE_CLUSTERS;
        p = slash + 1;
    }
    return kind;
}

struct walk_entry {
    char *fs;
    char *display;
    enum spec_file_kind kind;
};

struct walk {
    struct walk_entry *v;
    size_t len, cap;
    const char *real_root; /* symlinked files must resolve inside it */
    struct diag_list *diags;
    bool full;
    int rc; /* RV_ENOMEM once memory ran out */
};

static bool spec_name(enum spec_file_kind kind, const char *name)
{
    if (ends_with(name, ".yaml") || ends_with(name, ".yml"))
        return true;
    return kind == SPEC_FILE_CLUSTERS && ends_with(name, ".tf.json");
}

static char *path_join(const char *dir, const char *name)
{
    struct buf b = BUF_INIT;
    int rc = (dir && dir[0]) ? buf_printf(&b, "%s/%s", dir, name) : buf_puts(&b, name);
    if (rc < 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

static void walk_add(struct walk *w, char *fs, char *display, enum spec_file_kind kind)
{
    if (w->len >= RV_SPEC_FILES_MAX) {
        if (!w->full)
            diag_add(w->diags, DIAG_ERROR, display, 0, 0, "",
                     "more than %d spec files; this file and those after it were not read",
                     RV_SPEC_FILES_MAX);
        w->full = true;
        goto drop;
    }
    if (w->len == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct walk_entry *p = realloc(w->v, cap * sizeof(*p));
        if (p == NULL) {
            w->rc = RV_ENOMEM;
            goto drop;
        }
        w->v = p;
        w->cap = cap;
    }
    w->v[w->len].fs = fs;
    w->v[w->len].display = display;
    w->v[w->len].kind = kind;
    w->len++;
    return;
drop:
    free(fs);
    free(display);
}

/* True when the symbolic link fs resolves to a place inside the root. */
static bool inside_root(const struct walk *w, const char *fs)
{
    char *real = realpath(fs, NULL);
    bool ok = false;
    if (real && w->real_root) {
        size_t n = strlen(w->real_root);
        ok = strncmp(real, w->real_root, n) == 0 && (real[n] == '/' || real[n] == '\0');
        if (strcmp(w->real_root, "/") == 0)
            ok = true;
    }
    free(real);
    return ok;
}

static void walk_dir(struct walk *w, const char *fs_dir, const char *display_dir,
                     enum spec_file_kind kind, unsigned depth)
{
    char etext[128];
    DIR *d = opendir(fs_dir);
    struct dirent *e;

    if (d == NULL) {
        errno_text(etext, sizeof(etext), errno);
        diag_add(w->diags, DIAG_ERROR, "", 0, 0, "", "cannot read '%s': %s",
                 display_dir[0] ? display_dir : ".", etext);
        return;
    }
    while (w->rc == 0 && (e = readdir(d)) != NULL) {
        struct stat st;
        bool link = false;
        if (e->d_name[0] == '.')
            continue; /* hidden entries, "." and ".." */
        char *fs = path_join(fs_dir, e->d_name);
        char *display = path_join(display_dir, e->d_name);
        if (fs == NULL || display == NULL) {
            w->rc = RV_ENOMEM;
            goto next;
        }
        if (lstat(fs, &st) != 0)
            goto next;
        if (S_ISLNK(st.st_mode)) {
            link = true;
            if (stat(fs, &st) != 0) {
                if (spec_name(kind, e->d_name))
                    diag_add(w->diags, DIAG_WARNING, display, 0, 0, "",
                             "broken symbolic link; not read");
                goto next;
            }
            if (S_ISDIR(st.st_mode)) {
                diag_add(w->diags, DIAG_WARNING, display, 0, 0, "",
                         "symbolic link to a directory; not followed (move the files here "
                         "or link them one by one)");
                goto next;
            }
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 > RV_WALK_DEPTH_MAX) {
                diag_add(w->diags, DIAG_WARNING, display, 0, 0, "",
                         "directory nested more than %d levels deep; not read", RV_WALK_DEPTH_MAX);
                goto next;
            }
            walk_dir(w, fs, display, kind, depth + 1);
            goto next;
        }
        if (!S_ISREG(st.st_mode) || !spec_name(kind, e->d_name))
            goto next;
        if (link && !inside_root(w, fs)) {
            diag_add(w->diags, DIAG_WARNING, display, 0, 0, "",
                     "symbolic link to a file outside the repository; not read");
            goto next;
        }
        walk_add(w, fs, display, kind);
        fs = display = NULL;
    next:
        free(fs);
        free(display);
    }
    closedir(d);
}

static int walk_cmp(const void *pa, const void *pb)
{
    const struct walk_entry *a = pa, *b = pb;
    return strcmp(a->display, b->display);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int spec_set_load_path(struct spec_set *set, const char *root, const char *display_root,
                       struct diag_list *diags, struct rv_error *err)
{
    char etext[128];
    struct stat st;
    struct walk w;
    char *sub = NULL;
    char *sub_display = NULL;
    char *droot = NULL;
    const char *folders[] = {"clusters", "policies"};
    const enum spec_file_kind kinds[] = {SPEC_FILE_CLUSTERS, SPEC_FILE_POLICIES};
    bool found = false;
    bool io_failed = false;
    int rc = 0;
    DIR *probe;

    memset(&w, 0, sizeof(w));
    w.diags = diags;
    if (stat(root, &st) != 0) {
        errno_text(etext, sizeof(etext), errno);
        diag_add(diags, DIAG_ERROR, "", 0, 0, "", "cannot read '%s': %s",
                 display_root ? display_root : root, etext);
        rc = rv_error_set(err, RV_EIO, false, "cannot read '%s': %s", root, etext);
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        const char *display = display_root ? display_root : root;
        rc = spec_set_add_file(set, spec_file_kind_of(root), root, display, diags);
        if (rc == RV_EIO)
            rv_error_set(err, RV_EIO, false, "cannot read '%s'", display);
        goto out;
    }
    probe = opendir(root);
    if (probe == NULL) {
        errno_text(etext, sizeof(etext), errno);
        diag_add(diags, DIAG_ERROR, "", 0, 0, "", "cannot read '%s': %s",
                 display_root ? display_root : root, etext);
        rc = rv_error_set(err, RV_EIO, false, "cannot read directory '%s': %s", root, etext);
        goto out;
    }
    closedir(probe);
    w.real_root = realpath(root, NULL);
    if (display_root) {
        /* "repo/" shows as "repo/clusters/x.yaml", "." and "./" as "clusters/x.yaml" */
        size_t n = strlen(display_root);
        while (n > 1 && display_root[n - 1] == '/')
            n--;
        droot = strndup(display_root, n);
        if (droot == NULL) {
            rc = RV_ENOMEM;
            goto out;
        }
        display_root = strcmp(droot, ".") == 0 ? NULL : droot;
    }

    for (size_t i = 0; i < 2; i++) {
        free(sub);
        free(sub_display);
        sub = path_join(root, folders[i]);
        sub_display = path_join(display_root, folders[i]);
        if (sub == NULL || sub_display == NULL) {
            rc = RV_ENOMEM;
            goto out;
        }
        if (!is_dir(sub))
            continue;
        found = true;
        walk_dir(&w, sub, sub_display, kinds[i], 0);
    }
    if (!found)
        walk_dir(&w, root, display_root ? display_root : "", SPEC_FILE_CLUSTERS, 0);
    if (w.rc < 0) {
        rc = w.rc;
        goto out;
    }
    qsort(w.v, w.len, sizeof(*w.v), walk_cmp);
    for (size_t i = 0; i < w.len; i++) {
        int r = spec_set_add_file(set, w.v[i].kind, w.v[i].fs, w.v[i].display, diags);
        if (r == RV_EIO) {
            if (!io_failed)
                rv_error_set(err, RV_EIO, false, "cannot read '%s'", w.v[i].display);
            io_failed = true;
        } else if (r < 0) {
            rc = r;
            goto out;
        }
    }
    rc = io_failed ? RV_EIO : 0;
out:
    for (size_t i = 0; i < w.len; i++) {
        free(w.v[i].fs);
        free(w.v[i].display);
    }
    free(w.v);
    free((char *)w.real_root);
    free(droot);
    free(sub);
    free(sub_display);
    return rc;
}

int spec_set_load_dir(struct spec_set *set, const char *root, struct diag_list *diags,
                      struct rv_error *err)
{
    return spec_set_load_path(set, root, NULL, diags, err);
}

/* ----------------------------------------------------------- set checks */

static int cluster_id_cmp(const struct spec_cluster *a, const struct spec_cluster *b)
{
    int c = strcmp(a->namespace_, b->namespace_);
    return c ? c : strcmp(a->name, b->name);
}

struct indexed {
    const struct spec_cluster *c;
    size_t i;
};

static int indexed_cmp(const void *pa, const void *pb)
{
    const struct indexed *a = pa, *b = pb;
    int c = cluster_id_cmp(a->c, b->c);
    if (c)
        return c;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* "a:1:2", "a:1:2 and b:3:4", "a:1:2, b:3:4 and c:5:6", "... and 3 more" */
#define DUPLICATES_LISTED 3

static void put_where(struct buf *b, const char *file, struct spec_pos pos)
{
    buf_printf(b, "%s:%u:%u", file, pos.line, pos.col);
}

static void put_others(struct buf *b, const char *const *files, const struct spec_pos *pos,
                       size_t n)
{
    size_t shown = n > DUPLICATES_LISTED ? DUPLICATES_LISTED : n;
    for (size_t i = 0; i < shown; i++) {
        if (i > 0)
            buf_puts(b, i + 1 == shown && shown == n ? " and " : ", ");
        put_where(b, files[i], pos[i]);
    }
    if (shown < n)
        buf_printf(b, " and %zu more", n - shown);
}

/* Each definition of a namespace/name that is defined more than once gets
 * an error, so the file a pull request adds shows one whichever sorts
 * first: the first names the others, each other names the first. */
static void check_duplicates(const struct spec_set *set, struct diag_list *diags)
{
    struct indexed *ix = calloc(set->nclusters ? set->nclusters : 1, sizeof(*ix));
    if (ix == NULL) {
        diag_add(diags, DIAG_ERROR, "", 0, 0, "", "out of memory checking duplicate clusters");
        return;
    }
    for (size_t i = 0; i < set->nclusters; i++) {
        ix[i].c = set->clusters[i];
        ix[i].i = i;
    }
    qsort(ix, set->nclusters, sizeof(*ix), indexed_cmp);
    for (size_t g = 0; g < set->nclusters;) {
        size_t end = g + 1;
        while (end < set->nclusters && cluster_id_cmp(ix[g].c, ix[end].c) == 0)
            end++;
        if (end - g > 1) {
            const struct spec_cluster *a = ix[g].c;
            const char *files[DUPLICATES_LISTED];
            struct spec_pos pos[DUPLICATES_LISTED];
            struct buf others = BUF_INIT;
            for (size_t k = 0; k < end - g - 1 && k < DUPLICATES_LISTED; k++) {
                files[k] = ix[g + 1 + k].c->file;
                pos[k] = ix[g + 1 + k].c->name_pos;
            }
            put_others(&others, files, pos, end - g - 1);
            diag_add(diags, DIAG_ERROR, a->file, a->name_pos.line, a->name_pos.col, a->name_path,
                     "cluster '%s/%s' is also defined at %s; rename or remove one of them",
                     a->namespace_, a->name, others.data ? others.data : "");
            buf_release(&others);
            for (size_t k = g + 1; k < end; k++) {
                const struct spec_cluster *b = ix[k].c;
                diag_add(diags, DIAG_ERROR, b->file, b->name_pos.line, b->name_pos.col,
                         b->name_path,
                         "cluster '%s/%s' is already defined at %s:%u:%u; rename or remove one "
                         "of them",
                         b->namespace_, b->name, a->file, a->name_pos.line, a->name_pos.col);
            }
        }
        g = end;
    }
    free(ix);
}

/* As for clusters: every definition of a policy name used twice. */
static void check_policy_names(const struct spec_set *set, struct diag_list *diags)
{
    for (size_t i = 0; i < set->npolicies; i++) {
        const struct spec_policy *b = set->policies[i];
        const struct spec_policy *first = NULL;
        const char *files[DUPLICATES_LISTED];
        struct spec_pos pos[DUPLICATES_LISTED];
        size_t later = 0;
        for (size_t j = 0; j < set->npolicies; j++) {
            const struct spec_policy *a = set->policies[j];
            if (j == i || strcmp(a->name, b->name) != 0)
                continue;
            if (j < i && first == NULL)
                first = a;
            if (j > i) {
                if (later < DUPLICATES_LISTED) {
                    files[later] = a->file;
                    pos[later] = a->name_pos;
                }
                later++;
            }
        }
        if (first != NULL) {
            diag_add(diags, DIAG_ERROR, b->file, b->name_pos.line, b->name_pos.col, "metadata.name",
                     "policy '%s' is already defined at %s:%u:%u; rename or remove one of them",
                     b->name, first->file, first->name_pos.line, first->name_pos.col);
        } else if (later > 0) {
            struct buf others = BUF_INIT;
            put_others(&others, files, pos, later);
            diag_add(diags, DIAG_ERROR, b->file, b->name_pos.line, b->name_pos.col, "metadata.name",
                     "policy '%s' is also defined at %s; rename or remove one of them", b->name,
                     others.data ? others.data : "");
            buf_release(&others);
        }
    }
}

/* Edit distance of two short strings, or a large number when either is
 * longer than the names it is meant for. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[2 * RV_NAME_MAX + 2];
    if (la > 2 * RV_NAME_MAX + 1 || lb > 2 * RV_NAME_MAX + 1)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The cluster of the set whose namespace/name is closest to id, when it is
 * a likely typo (at most 2 edits); NULL otherwise. */
static const struct spec_cluster *closest_cluster(const struct spec_set *set, const char *id)
{
    char other[2 * RV_NAME_MAX + 2];
    const struct spec_cluster *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < set->nclusters; i++) {
        const struct spec_cluster *o = set->clusters[i];
        snprintf(other, sizeof(other), "%s/%s", o->namespace_, o->name);
        size_t d = edit_distance(id, other);
        if (d < best_d && d < strlen(id) / 2) {
            best = o;
            best_d = d;
        }
    }
    return best;
}

void spec_set_check(const struct spec_set *set, struct diag_list *diags)
{
    char path[RV_FIELD_PATH_MAX];

    check_duplicates(set, diags);
    check_policy_names(set, diags);
    for (size_t i = 0; i < set->nclusters; i++) {
        const struct spec_cluster *c = set->clusters[i];
        const char *from = c->bootstrap.from_cluster;
        if (c->bootstrap.kind == SPEC_BOOTSTRAP_FROM_BACKUP && from) {
            const char *slash = strchr(from, '/');
            bool known = false;
            for (size_t j = 0; slash && j < set->nclusters && !known; j++) {
                const struct spec_cluster *o = set->clusters[j];
                size_t nl = (size_t)(slash - from);
                known = strlen(o->namespace_) == nl && strncmp(o->namespace_, from, nl) == 0 &&
                        strcmp(o->name, slash + 1) == 0;
            }
            if (!known) {
                const struct spec_cluster *near = closest_cluster(set, from);
                char hint[2 * RV_NAME_MAX + 32] = "";
                if (near)
                    snprintf(hint, sizeof(hint), " (did you mean '%s/%s'?)", near->namespace_,
                             near->name);
                snprintf(path, sizeof(path), "%s.bootstrap.fromBackup.cluster", c->field_prefix);
                diag_add(diags, DIAG_WARNING, c->file, c->bootstrap.from_pos.line,
                         c->bootstrap.from_pos.col, path,
                         "no cluster '%s' in this repository%s; the backup must already exist in "
                         "its destination",
                         from, hint);
            }
        }
        for (size_t j = 0; j < set->npolicies; j++) {
            if (policy_applies(set->policies[j], c->namespace_))
                policy_check_cluster(set->policies[j], c, diags);
        }
    }
}

const struct spec_cluster *spec_set_find(const struct spec_set *set, const char *namespace_,
                                         const char *name)
{
    for (size_t i = 0; i < set->nclusters; i++) {
        const struct spec_cluster *c = set->clusters[i];
        if (strcmp(c->namespace_, namespace_) == 0 && strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

static int cluster_ptr_cmp(const void *pa, const void *pb)
{
    const struct spec_cluster *a = *(const struct spec_cluster *const *)pa;
    const struct spec_cluster *b = *(const struct spec_cluster *const *)pb;
    int c = cluster_id_cmp(a, b);
    if (c)
        return c;
    c = strcmp(a->file, b->file);
    if (c)
        return c;
    return a->pos.line < b->pos.line ? -1 : a->pos.line > b->pos.line;
}

void spec_set_sort(struct spec_set *set)
{
    if (set->nclusters > 1)
        qsort(set->clusters, set->nclusters, sizeof(*set->clusters), cluster_ptr_cmp);
}
