/* observed.c - observed state: model, strict JSON reader, canonical writer. */
#include "observed.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "limits.h"

/* ---- lifetime ---------------------------------------------------------- */

void observed_init(struct observed *obs)
{
    memset(obs, 0, sizeof(*obs));
}

static void instance_release(struct obs_instance *in)
{
    free(in->provider);
    free(in->id);
    free(in->namespace_);
    free(in->cluster);
    free(in->node);
    free(in->address);
    for (size_t i = 0; i < in->nlabels; i++) {
        free(in->labels[i].key);
        free(in->labels[i].value);
    }
    free(in->labels);
}

static void node_release(struct obs_node *n)
{
    free(n->namespace_);
    free(n->cluster);
    free(n->node);
    free(n->engine);
    free(n->version);
    free(n->position);
    for (size_t i = 0; i < n->nparams; i++) {
        free(n->params[i].name);
        free(n->params[i].value);
    }
    free(n->params);
}

static void cluster_release(struct obs_cluster *c)
{
    free(c->namespace_);
    free(c->name);
    for (size_t i = 0; i < c->nusers; i++)
        free(c->users[i]);
    free(c->users);
    free(c->backup_digest);
}

void observed_release(struct observed *obs)
{
    if (obs == NULL)
        return;
    for (size_t i = 0; i < obs->ninstances; i++)
        instance_release(&obs->instances[i]);
    free(obs->instances);
    for (size_t i = 0; i < obs->nnodes; i++)
        node_release(&obs->nodes[i]);
    free(obs->nodes);
    for (size_t i = 0; i < obs->nclusters; i++)
        cluster_release(&obs->clusters[i]);
    free(obs->clusters);
    free(obs->revision);
    observed_init(obs);
}

/* ---- names ------------------------------------------------------------- */

const char *observed_state_name(enum obs_state s)
{
    switch (s) {
    case OBS_STATE_PROVISIONING:
        return "provisioning";
    case OBS_STATE_RUNNING:
        return "running";
    case OBS_STATE_STOPPED:
        return "stopped";
    case OBS_STATE_FAILED:
        return "failed";
    }
    return "unknown";
}

const char *observed_role_name(enum obs_role r)
{
    switch (r) {
    case OBS_ROLE_PRIMARY:
        return "primary";
    case OBS_ROLE_REPLICA:
        return "replica";
    case OBS_ROLE_UNKNOWN:
        break;
    }
    return "unknown";
}

bool observed_node_is_stale(const struct obs_node *n, int64_t now)
{
    if (n->ttl_s <= 0)
        return true;
    if (n->last_report > INT64_MAX - n->ttl_s)
        return false;
    return now > n->last_report + n->ttl_s;
}

/* ---- time -------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int observed_time_parse(int64_t *out, const char *text)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *s = text;
    if (strlen(s) < 20)
        return RV_EINVAL;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 60 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return RV_EINVAL;
    int dim = mdays[mo - 1] + (mo == 2 && is_leap(y) ? 1 : 0);
    if (d > dim)
        return RV_EINVAL;
    s += 19;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return RV_EINVAL;
        while (isdigit((unsigned char)*s))
            s++;
    }
    int64_t offset = 0;
    if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
        offset = 0;
    } else if ((*s == '+' || *s == '-') && strlen(s) == 6 && s[3] == ':') {
        int oh = digits(s + 1, 2), om = digits(s + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return RV_EINVAL;
        offset = (int64_t)(oh * 3600 + om * 60);
        if (*s == '-')
            offset = -offset;
    } else {
        return RV_EINVAL;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    *out = t - offset;
    return 0;
}

void observed_time_format(char out[OBSERVED_TIME_LEN], int64_t t)
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t secs = t - days * 86400;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, OBSERVED_TIME_LEN, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
             (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

/* ---- strict reader ----------------------------------------------------- */

struct ld {
    const char *name;
    struct rv_error *err;
};

static int ld_fail(struct ld *ld, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int ld_fail(struct ld *ld, int code, const char *path, const char *fmt, ...)
{
    char msg[RV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path[0])
        return rv_error_set(ld->err, code, false, "%s: %s: %s", ld->name, path, msg);
    return rv_error_set(ld->err, code, false, "%s: %s", ld->name, msg);
}

/* Field paths for messages; a path past RV_FIELD_PATH_MAX is cut, which
 * only shortens a message. */
static void join_path(char out[RV_FIELD_PATH_MAX], const char *path, const char *key)
{
    int n;
    if (path[0])
        n = snprintf(out, RV_FIELD_PATH_MAX, "%s.%s", path, key);
    else
        n = snprintf(out, RV_FIELD_PATH_MAX, "%s", key);
    if (n < 0)
        out[0] = '\0';
}

static void index_path(char out[RV_FIELD_PATH_MAX], const char *path, size_t i)
{
    int n = snprintf(out, RV_FIELD_PATH_MAX, "%s[%zu]", path, i);
    if (n < 0)
        out[0] = '\0';
}

static const char *json_type_word(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

/* Edit distance, capped: only used to suggest a field name. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost =
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int check_fields(struct ld *ld, const json_t *obj, const char *path,
                        const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool found = false;
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t i = 0; known[i]; i++) {
            if (strcmp(key, known[i]) == 0) {
                found = true;
                break;
            }
            size_t d = edit_distance(key, known[i]);
            if (d < best_d) {
                best_d = d;
                best = known[i];
            }
        }
        if (found)
            continue;
        char p[RV_FIELD_PATH_MAX];
        join_path(p, path, key);
        if (best)
            return ld_fail(ld, RV_EPARSE, p, "unknown field; did you mean '%s'?", best);
        char list[RV_FIELD_PATH_MAX] = "";
        size_t used = 0;
        for (size_t i = 0; known[i]; i++) {
            int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", known[i]);
            if (n < 0 || (size_t)n >= sizeof(list) - used)
                break;
            used += (size_t)n;
        }
        return ld_fail(ld, RV_EPARSE, p, "unknown field; known fields are %s", list);
    }
    return 0;
}

static int want_type(struct ld *ld, const json_t *v, const char *path, const char *what, bool ok)
{
    if (ok)
        return 0;
    return ld_fail(ld, RV_EPARSE, path, "must be %s (got %s)", what, json_type_word(v));
}

/* A string field; *out is NULL when absent and not required. */
static int get_str(struct ld *ld, const json_t *obj, const char *path, const char *key,
                   bool required, bool allow_empty, char **out)
{
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, key);
    *out = NULL;
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (required)
            return ld_fail(ld, RV_EPARSE, p, "is required");
        return 0;
    }
    int rc = want_type(ld, v, p, "a string", json_is_string(v));
    if (rc)
        return rc;
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (strlen(s) != len)
        return ld_fail(ld, RV_EPARSE, p, "must not contain NUL characters");
    if (len > RV_OBSERVED_STRING_MAX)
        return ld_fail(ld, RV_ELIMIT, p, "is longer than %d bytes", RV_OBSERVED_STRING_MAX);
    if (len == 0 && !allow_empty)
        return ld_fail(ld, RV_EPARSE, p, "must not be empty");
    *out = strdup(s);
    if (*out == NULL)
        return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
    return 0;
}

static int get_int(struct ld *ld, const json_t *obj, const char *path, const char *key,
                   bool required, int64_t min, int64_t max, int64_t dflt, int64_t *out)
{
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, key);
    *out = dflt;
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (required)
            return ld_fail(ld, RV_EPARSE, p, "is required");
        return 0;
    }
    int rc = want_type(ld, v, p, "an integer", json_is_integer(v));
    if (rc)
        return rc;
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return ld_fail(ld, RV_EPARSE, p, "must be between %lld and %lld (got %lld)", (long long)min,
                       (long long)max, (long long)i);
    *out = (int64_t)i;
    return 0;
}

static int get_bool(struct ld *ld, const json_t *obj, const char *path, const char *key,
                    bool required, enum obs_tristate *out)
{
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, key);
    *out = OBS_UNKNOWN;
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (required)
            return ld_fail(ld, RV_EPARSE, p, "is required");
        return 0;
    }
    int rc = want_type(ld, v, p, "true or false", json_is_boolean(v));
    if (rc)
        return rc;
    *out = json_is_true(v) ? OBS_TRUE : OBS_FALSE;
    return 0;
}

/* A time field; *out is 0 when absent or null (and not required). */
static int get_time(struct ld *ld, const json_t *obj, const char *path, const char *key,
                    bool required, int64_t *out)
{
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, key);
    *out = 0;
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || (json_is_null(v) && !required)) {
        if (required)
            return ld_fail(ld, RV_EPARSE, p, "is required");
        return 0;
    }
    int rc = want_type(ld, v, p, "an RFC 3339 time string", json_is_string(v));
    if (rc)
        return rc;
    if (observed_time_parse(out, json_string_value(v)) != 0)
        return ld_fail(ld, RV_EPARSE, p,
                       "must be an RFC 3339 time such as \"2026-11-21T05:00:00Z\" (got \"%.64s\")",
                       json_string_value(v));
    return 0;
}

static bool is_dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RV_NAME_MAX || !islower((unsigned char)s[0]) || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '-'))
            return false;
    }
    return true;
}

/* Node names follow the cluster's (`billing-0`) but observed state may hold
 * names reeve did not choose; any DNS-label-like name is accepted. */
static bool is_node_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RV_OBSERVED_NODE_NAME_MAX || !isalnum((unsigned char)s[0]) ||
        !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '-'))
            return false;
    }
    return true;
}

/* Parameter names of both engines: letters, digits, '_', '.', '-'. */
static bool is_param_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* "namespace/name" */
static int get_cluster_ref(struct ld *ld, const json_t *obj, const char *path, char **ns,
                           char **name)
{
    char p[RV_FIELD_PATH_MAX];
    char *ref = NULL;
    int rc = get_str(ld, obj, path, "cluster", true, false, &ref);
    if (rc)
        return rc;
    join_path(p, path, "cluster");
    char *slash = strchr(ref, '/');
    if (slash == NULL) {
        rc = ld_fail(ld, RV_EPARSE, p, "must be \"namespace/name\" (got \"%.128s\")", ref);
        goto out;
    }
    *slash = '\0';
    if (!is_dns_label(ref) || !is_dns_label(slash + 1)) {
        *slash = '/';
        rc = ld_fail(ld, RV_EPARSE, p,
                     "must be \"namespace/name\" with both parts DNS labels (got \"%.128s\")", ref);
        goto out;
    }
    *ns = strdup(ref);
    *name = strdup(slash + 1);
    if (*ns == NULL || *name == NULL)
        rc = rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
out:
    free(ref);
    return rc;
}

static int get_node_name(struct ld *ld, const json_t *obj, const char *path, char **out)
{
    int rc = get_str(ld, obj, path, "node", true, false, out);
    if (rc)
        return rc;
    if (!is_node_name(*out)) {
        char p[RV_FIELD_PATH_MAX];
        join_path(p, path, "node");
        return ld_fail(ld, RV_EPARSE, p,
                       "must be a node name of lowercase letters, digits and '-' such as "
                       "\"billing-0\" (got \"%.64s\")",
                       *out);
    }
    return 0;
}

static int get_array(struct ld *ld, const json_t *root, const char *key, size_t max,
                     const json_t **out)
{
    *out = json_object_get(root, key);
    if (*out == NULL)
        return 0;
    int rc = want_type(ld, *out, key, "an array", json_is_array(*out));
    if (rc)
        return rc;
    if (json_array_size(*out) > max)
        return ld_fail(ld, RV_ELIMIT, key, "has %zu entries; at most %zu are accepted",
                       json_array_size(*out), max);
    return 0;
}

static int parse_state(struct ld *ld, const json_t *obj, const char *path, enum obs_state *out)
{
    static const char *const names[] = {"provisioning", "running", "stopped", "failed"};
    char *s = NULL;
    int rc = get_str(ld, obj, path, "state", true, false, &s);
    if (rc)
        return rc;
    rc = RV_EPARSE;
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum obs_state)i;
            rc = 0;
        }
    }
    if (rc) {
        char p[RV_FIELD_PATH_MAX];
        join_path(p, path, "state");
        rc = ld_fail(ld, RV_EPARSE, p,
                     "must be one of provisioning, running, stopped, failed (got \"%.64s\")", s);
    }
    free(s);
    return rc;
}

static int parse_instance(struct ld *ld, const json_t *v, const char *path, struct obs_instance *in)
{
    static const char *const known[] = {"provider", "id",     "cluster", "node",
                                        "address",  "labels", "state",   NULL};
    int rc = want_type(ld, v, path, "an object", json_is_object(v));
    if (rc == 0)
        rc = check_fields(ld, v, path, known);
    if (rc == 0)
        rc = get_str(ld, v, path, "provider", true, false, &in->provider);
    if (rc == 0)
        rc = get_str(ld, v, path, "id", true, false, &in->id);
    if (rc == 0)
        rc = get_cluster_ref(ld, v, path, &in->namespace_, &in->cluster);
    if (rc == 0)
        rc = get_node_name(ld, v, path, &in->node);
    if (rc == 0)
        rc = get_str(ld, v, path, "address", false, true, &in->address);
    if (rc == 0 && in->address == NULL && (in->address = strdup("")) == NULL)
        rc = rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
    if (rc == 0)
        rc = parse_state(ld, v, path, &in->state);
    if (rc)
        return rc;

    const json_t *labels = json_object_get(v, "labels");
    if (labels == NULL)
        return 0;
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, "labels");
    rc = want_type(ld, labels, p, "an object of strings", json_is_object(labels));
    if (rc)
        return rc;
    size_t n = json_object_size(labels);
    if (n > RV_OBSERVED_LABELS_MAX)
        return ld_fail(ld, RV_ELIMIT, p, "has %zu labels; at most %d are accepted", n,
                       RV_OBSERVED_LABELS_MAX);
    if (n == 0)
        return 0;
    in->labels = calloc(n, sizeof(*in->labels));
    if (in->labels == NULL)
        return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
    const char *key;
    json_t *lv;
    json_object_foreach((json_t *)labels, key, lv)
    {
        struct obs_label *l = &in->labels[in->nlabels];
        if (strlen(key) == 0 || strlen(key) > RV_OBSERVED_STRING_MAX)
            return ld_fail(ld, RV_EPARSE, p, "label keys must be 1 to %d bytes",
                           RV_OBSERVED_STRING_MAX);
        l->key = strdup(key);
        if (l->key == NULL)
            return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
        in->nlabels++;
        rc = get_str(ld, labels, p, key, true, true, &l->value);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_params(struct ld *ld, const json_t *v, const char *path, struct obs_node *n)
{
    static const char *const known[] = {"value", "pendingRestart", NULL};
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, "parameters");
    const json_t *params = json_object_get(v, "parameters");
    if (params == NULL)
        return 0;
    int rc = want_type(ld, params, p, "an object", json_is_object(params));
    if (rc)
        return rc;
    size_t count = json_object_size(params);
    if (count > RV_OBSERVED_PARAMS_MAX)
        return ld_fail(ld, RV_ELIMIT, p, "has %zu parameters; at most %d are accepted", count,
                       RV_OBSERVED_PARAMS_MAX);
    if (count == 0)
        return 0;
    n->params = calloc(count, sizeof(*n->params));
    if (n->params == NULL)
        return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
    const char *key;
    json_t *pv;
    json_object_foreach((json_t *)params, key, pv)
    {
        struct obs_param *prm = &n->params[n->nparams];
        char pp[RV_FIELD_PATH_MAX];
        join_path(pp, p, key);
        if (!is_param_name(key))
            return ld_fail(ld, RV_EPARSE, pp,
                           "is not a parameter name (letters, digits, '_', '.', '-')");
        prm->name = strdup(key);
        if (prm->name == NULL)
            return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
        n->nparams++;
        if (json_is_string(pv)) {
            rc = get_str(ld, params, p, key, true, true, &prm->value);
            if (rc)
                return rc;
            continue;
        }
        rc = want_type(ld, pv, pp, "a string or {\"value\": ..., \"pendingRestart\": ...}",
                       json_is_object(pv));
        if (rc == 0)
            rc = check_fields(ld, pv, pp, known);
        if (rc == 0)
            rc = get_str(ld, pv, pp, "value", true, true, &prm->value);
        enum obs_tristate pending = OBS_UNKNOWN;
        if (rc == 0)
            rc = get_bool(ld, pv, pp, "pendingRestart", false, &pending);
        if (rc)
            return rc;
        prm->pending_restart = pending == OBS_TRUE;
    }
    return 0;
}

static int parse_resources(struct ld *ld, const json_t *v, const char *path, struct obs_node *n)
{
    static const char *const known[] = {"cpu", "memoryMiB", "storageGiB", NULL};
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, "resources");
    const json_t *r = json_object_get(v, "resources");
    if (r == NULL)
        return ld_fail(ld, RV_EPARSE, p, "is required ({\"cpu\", \"memoryMiB\", \"storageGiB\"})");
    int rc = want_type(ld, r, p, "an object", json_is_object(r));
    if (rc == 0)
        rc = check_fields(ld, r, p, known);
    if (rc)
        return rc;
    char cp[RV_FIELD_PATH_MAX];
    join_path(cp, p, "cpu");
    const json_t *cpu = json_object_get(r, "cpu");
    if (cpu == NULL)
        return ld_fail(ld, RV_EPARSE, cp, "is required");
    rc = want_type(ld, cpu, cp, "a number", json_is_number(cpu));
    if (rc)
        return rc;
    n->resources.cpu = json_number_value(cpu);
    if (!(n->resources.cpu >= 0 && n->resources.cpu <= RV_OBSERVED_CPU_MAX))
        return ld_fail(ld, RV_EPARSE, cp, "must be between 0 and %d (got %g)", RV_OBSERVED_CPU_MAX,
                       n->resources.cpu);
    rc = get_int(ld, r, p, "memoryMiB", true, 0, INT64_C(1) << 40, 0, &n->resources.memory_mib);
    if (rc == 0)
        rc = get_int(ld, r, p, "storageGiB", true, 0, INT64_C(1) << 40, 0,
                     &n->resources.storage_gib);
    return rc;
}

static int parse_node(struct ld *ld, const json_t *v, const char *path, struct obs_node *n)
{
    static const char *const known[] = {
        "cluster",  "node",       "role",      "engine",     "version",    "healthy", "lagBytes",
        "position", "parameters", "resources", "lastReport", "ttlSeconds", NULL};
    int rc = want_type(ld, v, path, "an object", json_is_object(v));
    if (rc == 0)
        rc = check_fields(ld, v, path, known);
    if (rc == 0)
        rc = get_cluster_ref(ld, v, path, &n->namespace_, &n->cluster);
    if (rc == 0)
        rc = get_node_name(ld, v, path, &n->node);
    char *role = NULL;
    if (rc == 0)
        rc = get_str(ld, v, path, "role", true, false, &role);
    if (rc == 0) {
        char p[RV_FIELD_PATH_MAX];
        join_path(p, path, "role");
        if (strcmp(role, "primary") == 0)
            n->role = OBS_ROLE_PRIMARY;
        else if (strcmp(role, "replica") == 0)
            n->role = OBS_ROLE_REPLICA;
        else if (strcmp(role, "unknown") == 0)
            n->role = OBS_ROLE_UNKNOWN;
        else
            rc = ld_fail(ld, RV_EPARSE, p,
                         "must be one of primary, replica, unknown (got \"%.64s\")", role);
    }
    free(role);
    if (rc == 0)
        rc = get_str(ld, v, path, "engine", true, false, &n->engine);
    if (rc == 0 && strcmp(n->engine, "postgresql") != 0 && strcmp(n->engine, "mariadb") != 0) {
        char p[RV_FIELD_PATH_MAX];
        join_path(p, path, "engine");
        rc = ld_fail(ld, RV_EPARSE, p, "must be one of postgresql, mariadb (got \"%.64s\")",
                     n->engine);
    }
    if (rc == 0)
        rc = get_str(ld, v, path, "version", true, false, &n->version);
    enum obs_tristate healthy = OBS_UNKNOWN;
    if (rc == 0)
        rc = get_bool(ld, v, path, "healthy", true, &healthy);
    n->healthy = healthy == OBS_TRUE;
    if (rc == 0)
        rc = get_int(ld, v, path, "lagBytes", false, 0, INT64_MAX, 0, &n->lag_bytes);
    if (rc == 0)
        rc = get_str(ld, v, path, "position", false, true, &n->position);
    if (rc == 0 && n->position == NULL && (n->position = strdup("")) == NULL)
        rc = rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
    if (rc == 0)
        rc = parse_params(ld, v, path, n);
    if (rc == 0)
        rc = parse_resources(ld, v, path, n);
    if (rc == 0)
        rc = get_time(ld, v, path, "lastReport", true, &n->last_report);
    if (rc == 0)
        rc = get_int(ld, v, path, "ttlSeconds", false, 1, RV_OBSERVED_TTL_MAX_S,
                     RV_OBSERVED_TTL_DEFAULT_S, &n->ttl_s);
    return rc;
}

static int parse_cluster(struct ld *ld, const json_t *v, const char *path, struct obs_cluster *c)
{
    static const char *const known[] = {
        "cluster", "users", "backupDigest", "lastBackup", "deletionProtection", NULL};
    int rc = want_type(ld, v, path, "an object", json_is_object(v));
    if (rc == 0)
        rc = check_fields(ld, v, path, known);
    if (rc == 0)
        rc = get_cluster_ref(ld, v, path, &c->namespace_, &c->name);
    if (rc == 0) {
        const json_t *bd = json_object_get(v, "backupDigest");
        if (bd != NULL && !json_is_null(bd))
            rc = get_str(ld, v, path, "backupDigest", true, false, &c->backup_digest);
    }
    if (rc == 0)
        rc = get_time(ld, v, path, "lastBackup", false, &c->last_backup);
    if (rc == 0)
        rc = get_bool(ld, v, path, "deletionProtection", false, &c->deletion_protection);
    if (rc)
        return rc;

    const json_t *users = json_object_get(v, "users");
    if (users == NULL)
        return 0;
    char p[RV_FIELD_PATH_MAX];
    join_path(p, path, "users");
    rc = want_type(ld, users, p, "an array of user names", json_is_array(users));
    if (rc)
        return rc;
    size_t n = json_array_size(users);
    if (n > RV_OBSERVED_USERS_MAX)
        return ld_fail(ld, RV_ELIMIT, p, "has %zu users; at most %d are accepted", n,
                       RV_OBSERVED_USERS_MAX);
    if (n == 0)
        return 0;
    c->users = calloc(n, sizeof(*c->users));
    if (c->users == NULL)
        return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *u = json_array_get(users, i);
        char up[RV_FIELD_PATH_MAX];
        index_path(up, p, i);
        rc = want_type(ld, u, up, "a user name", json_is_string(u));
        if (rc)
            return rc;
        size_t len = json_string_length(u);
        if (len == 0 || len > RV_NAME_MAX || strlen(json_string_value(u)) != len)
            return ld_fail(ld, RV_EPARSE, up, "must be a user name of 1 to %d characters",
                           RV_NAME_MAX);
        for (size_t j = 0; j < c->nusers; j++) {
            if (strcmp(c->users[j], json_string_value(u)) == 0)
                return ld_fail(ld, RV_EPARSE, up, "user '%s' is listed twice", c->users[j]);
        }
        c->users[c->nusers] = strdup(json_string_value(u));
        if (c->users[c->nusers] == NULL)
            return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
        c->nusers++;
    }
    return 0;
}

/* ---- ordering ---------------------------------------------------------- */

static int cmp_cluster(const char *ns_a, const char *a, const char *ns_b, const char *b)
{
    int c = strcmp(ns_a, ns_b);
    return c ? c : strcmp(a, b);
}

static int cmp_instance(const void *pa, const void *pb)
{
    const struct obs_instance *a = pa, *b = pb;
    int c = cmp_cluster(a->namespace_, a->cluster, b->namespace_, b->cluster);
    if (c == 0)
        c = strcmp(a->node, b->node);
    if (c == 0)
        c = strcmp(a->provider, b->provider);
    if (c == 0)
        c = strcmp(a->id, b->id);
    return c;
}

static int cmp_node(const void *pa, const void *pb)
{
    const struct obs_node *a = pa, *b = pb;
    int c = cmp_cluster(a->namespace_, a->cluster, b->namespace_, b->cluster);
    return c ? c : strcmp(a->node, b->node);
}

static int cmp_obs_cluster(const void *pa, const void *pb)
{
    const struct obs_cluster *a = pa, *b = pb;
    return cmp_cluster(a->namespace_, a->name, b->namespace_, b->name);
}

static int cmp_instance_id(const void *pa, const void *pb)
{
    const struct obs_instance *a = *(const struct obs_instance *const *)pa;
    const struct obs_instance *b = *(const struct obs_instance *const *)pb;
    int c = strcmp(a->provider, b->provider);
    return c ? c : strcmp(a->id, b->id);
}

static int cmp_label(const void *pa, const void *pb)
{
    const struct obs_label *a = pa, *b = pb;
    return strcmp(a->key, b->key);
}

static int cmp_param(const void *pa, const void *pb)
{
    const struct obs_param *a = pa, *b = pb;
    return strcmp(a->name, b->name);
}

static int cmp_str(const void *pa, const void *pb)
{
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

/* Sort everything and reject duplicates (which the sort puts side by side). */
static int normalise(struct ld *ld, struct observed *obs)
{
    if (obs->ninstances > 1)
        qsort(obs->instances, obs->ninstances, sizeof(*obs->instances), cmp_instance);
    for (size_t i = 0; i < obs->ninstances; i++) {
        struct obs_instance *in = &obs->instances[i];
        if (in->nlabels > 1)
            qsort(in->labels, in->nlabels, sizeof(*in->labels), cmp_label);
        if (i > 0 &&
            cmp_cluster(in[-1].namespace_, in[-1].cluster, in->namespace_, in->cluster) == 0 &&
            strcmp(in[-1].node, in->node) == 0)
            return ld_fail(ld, RV_EPARSE, "instances",
                           "node '%s' of cluster '%s/%s' has two instances ('%s' and '%s'); "
                           "list each node once",
                           in->node, in->namespace_, in->cluster, in[-1].id, in->id);
    }
    /* (provider, id) must be unique too; a copy sorted that way finds repeats. */
    if (obs->ninstances > 1) {
        struct obs_instance **by_id = calloc(obs->ninstances, sizeof(*by_id));
        if (by_id == NULL)
            return rv_error_set(ld->err, RV_ENOMEM, false, "out of memory");
        for (size_t i = 0; i < obs->ninstances; i++)
            by_id[i] = &obs->instances[i];
        int rc = 0;
        qsort(by_id, obs->ninstances, sizeof(*by_id), cmp_instance_id);
        for (size_t i = 1; i < obs->ninstances && rc == 0; i++) {
            if (strcmp(by_id[i]->provider, by_id[i - 1]->provider) == 0 &&
                strcmp(by_id[i]->id, by_id[i - 1]->id) == 0)
                rc = ld_fail(ld, RV_EPARSE, "instances",
                             "instance '%s' of provider '%s' is listed twice", by_id[i]->id,
                             by_id[i]->provider);
        }
        free(by_id);
        if (rc)
            return rc;
    }
    if (obs->nnodes > 1)
        qsort(obs->nodes, obs->nnodes, sizeof(*obs->nodes), cmp_node);
    for (size_t i = 0; i < obs->nnodes; i++) {
        struct obs_node *n = &obs->nodes[i];
        if (n->nparams > 1)
            qsort(n->params, n->nparams, sizeof(*n->params), cmp_param);
        if (i > 0 && cmp_node(&n[-1], n) == 0)
            return ld_fail(ld, RV_EPARSE, "nodes",
                           "node '%s' of cluster '%s/%s' is reported twice; keep the newest "
                           "report only",
                           n->node, n->namespace_, n->cluster);
    }
    if (obs->nclusters > 1)
        qsort(obs->clusters, obs->nclusters, sizeof(*obs->clusters), cmp_obs_cluster);
    for (size_t i = 0; i < obs->nclusters; i++) {
        struct obs_cluster *c = &obs->clusters[i];
        if (c->nusers > 1)
            qsort(c->users, c->nusers, sizeof(*c->users), cmp_str);
        if (i > 0 && cmp_obs_cluster(&c[-1], c) == 0)
            return ld_fail(ld, RV_EPARSE, "clusters",
                           "cluster '%s/%s' is listed twice; merge its facts into one entry",
                           c->namespace_, c->name);
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------ */

int observed_from_json(struct observed *obs, const json_t *root, const char *name,
                       struct rv_error *err)
{
    static const char *const known[] = {"revision", "instances", "nodes", "clusters", NULL};
    struct ld ld = {name, err};
    const json_t *instances = NULL, *nodes = NULL, *clusters = NULL;
    char path[RV_FIELD_PATH_MAX];
    int rc;

    observed_release(obs);
    rc = want_type(&ld, root, "", "a JSON object with instances, nodes and clusters",
                   json_is_object(root));
    if (rc == 0)
        rc = check_fields(&ld, root, "", known);
    if (rc == 0)
        rc = get_str(&ld, root, "", "revision", false, false, &obs->revision);
    if (rc == 0)
        rc = get_array(&ld, root, "instances", RV_OBSERVED_INSTANCES_MAX, &instances);
    if (rc == 0)
        rc = get_array(&ld, root, "nodes", RV_OBSERVED_NODES_MAX, &nodes);
    if (rc == 0)
        rc = get_array(&ld, root, "clusters", RV_OBSERVED_CLUSTERS_MAX, &clusters);
    if (rc)
        goto out;

    size_t n = instances ? json_array_size(instances) : 0;
    if (n && (obs->instances = calloc(n, sizeof(*obs->instances))) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        index_path(path, "instances", i);
        obs->ninstances++;
        rc = parse_instance(&ld, json_array_get(instances, i), path, &obs->instances[i]);
        if (rc)
            goto out;
    }

    n = nodes ? json_array_size(nodes) : 0;
    if (n && (obs->nodes = calloc(n, sizeof(*obs->nodes))) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        index_path(path, "nodes", i);
        obs->nnodes++;
        rc = parse_node(&ld, json_array_get(nodes, i), path, &obs->nodes[i]);
        if (rc)
            goto out;
    }

    n = clusters ? json_array_size(clusters) : 0;
    if (n && (obs->clusters = calloc(n, sizeof(*obs->clusters))) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        index_path(path, "clusters", i);
        obs->nclusters++;
        rc = parse_cluster(&ld, json_array_get(clusters, i), path, &obs->clusters[i]);
        if (rc)
            goto out;
    }

    rc = normalise(&ld, obs);
out:
    if (rc)
        observed_release(obs);
    return rc;
}

int observed_load_json(struct observed *obs, const char *name, const char *data, size_t len,
                       struct rv_error *err)
{
    json_error_t jerr;
    json_t *root = NULL;
    int rc;

    observed_release(obs);
    if (len > RV_OBSERVED_FILE_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "%s: observed state is %zu bytes; at most %d are accepted", name, len,
                          RV_OBSERVED_FILE_MAX);
        goto out;
    }
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = rv_error_set(err, RV_EPARSE, false, "%s:%d:%d: %s", name, jerr.line, jerr.column,
                          jerr.text);
        goto out;
    }
    rc = observed_from_json(obs, root, name, err);
out:
    json_decref(root);
    return rc;
}

int observed_load_file(struct observed *obs, const char *path, struct rv_error *err)
{
    FILE *f = NULL;
    char *data = NULL;
    size_t len = 0;
    int rc;

    observed_release(obs);
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = rv_error_set(err, RV_EIO, false, "cannot open observed state '%s': %s", path,
                          strerror(errno));
        goto out;
    }
    data = malloc((size_t)RV_OBSERVED_FILE_MAX + 1);
    if (data == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    len = fread(data, 1, (size_t)RV_OBSERVED_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = rv_error_set(err, RV_EIO, false, "cannot read observed state '%s': %s", path,
                          strerror(errno));
        goto out;
    }
    if (len > RV_OBSERVED_FILE_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "%s: observed state is larger than %d bytes; split the fleet or "
                          "raise RV_OBSERVED_FILE_MAX",
                          path, RV_OBSERVED_FILE_MAX);
        goto out;
    }
    rc = observed_load_json(obs, path, data, len, err);
out:
    free(data);
    if (f)
        fclose(f);
    return rc;
}

/* ---- writer ------------------------------------------------------------ */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t t)
{
    char buf[OBSERVED_TIME_LEN];
    if (t == 0)
        return json_null();
    observed_time_format(buf, t);
    return json_string(buf);
}

static json_t *cluster_ref(const char *ns, const char *name)
{
    return json_sprintf("%s/%s", ns, name);
}

static json_t *instance_to_json(const struct obs_instance *in)
{
    json_t *o = json_object();
    json_t *labels = json_object();
    int bad = o == NULL || labels == NULL;
    for (size_t i = 0; i < in->nlabels && !bad; i++)
        bad |= json_object_set_new(labels, in->labels[i].key, json_string(in->labels[i].value));
    bad |= json_object_set_new(o, "provider", json_string(in->provider));
    bad |= json_object_set_new(o, "id", json_string(in->id));
    bad |= json_object_set_new(o, "cluster", cluster_ref(in->namespace_, in->cluster));
    bad |= json_object_set_new(o, "node", json_string(in->node));
    bad |= json_object_set_new(o, "address", json_string(in->address ? in->address : ""));
    bad |= json_object_set(o, "labels", labels);
    bad |= json_object_set_new(o, "state", json_string(observed_state_name(in->state)));
    json_decref(labels);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *node_to_json(const struct obs_node *n)
{
    char t[OBSERVED_TIME_LEN];
    json_t *o = json_object();
    json_t *params = json_object();
    json_t *res = json_object();
    int bad = o == NULL || params == NULL || res == NULL;
    for (size_t i = 0; i < n->nparams && !bad; i++) {
        const struct obs_param *p = &n->params[i];
        if (!p->pending_restart) {
            bad |= json_object_set_new(params, p->name, json_string(p->value));
            continue;
        }
        bad |= json_object_set_new(params, p->name,
                                   json_pack("{s:s, s:b}", "value", p->value, "pendingRestart", 1));
    }
    double cpu = n->resources.cpu;
    if (cpu == (double)(int64_t)cpu)
        bad |= json_object_set_new(res, "cpu", json_integer((json_int_t)cpu));
    else
        bad |= json_object_set_new(res, "cpu", json_real(cpu));
    bad |= json_object_set_new(res, "memoryMiB", json_integer(n->resources.memory_mib));
    bad |= json_object_set_new(res, "storageGiB", json_integer(n->resources.storage_gib));
    observed_time_format(t, n->last_report);
    bad |= json_object_set_new(o, "cluster", cluster_ref(n->namespace_, n->cluster));
    bad |= json_object_set_new(o, "node", json_string(n->node));
    bad |= json_object_set_new(o, "role", json_string(observed_role_name(n->role)));
    bad |= json_object_set_new(o, "engine", json_string(n->engine));
    bad |= json_object_set_new(o, "version", json_string(n->version));
    bad |= json_object_set_new(o, "healthy", json_boolean(n->healthy));
    bad |= json_object_set_new(o, "lagBytes", json_integer(n->lag_bytes));
    bad |= json_object_set_new(o, "position", json_string(n->position ? n->position : ""));
    bad |= json_object_set(o, "parameters", params);
    bad |= json_object_set(o, "resources", res);
    bad |= json_object_set_new(o, "lastReport", json_string(t));
    bad |= json_object_set_new(o, "ttlSeconds", json_integer(n->ttl_s));
    json_decref(params);
    json_decref(res);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *cluster_to_json(const struct obs_cluster *c)
{
    json_t *o = json_object();
    json_t *users = json_array();
    int bad = o == NULL || users == NULL;
    for (size_t i = 0; i < c->nusers && !bad; i++)
        bad |= json_array_append_new(users, json_string(c->users[i]));
    bad |= json_object_set_new(o, "cluster", cluster_ref(c->namespace_, c->name));
    bad |= json_object_set(o, "users", users);
    bad |= json_object_set_new(o, "backupDigest", str_or_null(c->backup_digest));
    bad |= json_object_set_new(o, "lastBackup", time_or_null(c->last_backup));
    if (c->deletion_protection != OBS_UNKNOWN)
        bad |= json_object_set_new(o, "deletionProtection",
                                   json_boolean(c->deletion_protection == OBS_TRUE));
    json_decref(users);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *to_json(const struct observed *obs, bool with_revision)
{
    json_t *o = json_object();
    json_t *ins = json_array(), *nodes = json_array(), *clusters = json_array();
    int bad = o == NULL || ins == NULL || nodes == NULL || clusters == NULL;
    for (size_t i = 0; i < obs->ninstances && !bad; i++)
        bad |= json_array_append_new(ins, instance_to_json(&obs->instances[i]));
    for (size_t i = 0; i < obs->nnodes && !bad; i++)
        bad |= json_array_append_new(nodes, node_to_json(&obs->nodes[i]));
    for (size_t i = 0; i < obs->nclusters && !bad; i++)
        bad |= json_array_append_new(clusters, cluster_to_json(&obs->clusters[i]));
    if (with_revision && obs->revision)
        bad |= json_object_set_new(o, "revision", json_string(obs->revision));
    bad |= json_object_set(o, "instances", ins);
    bad |= json_object_set(o, "nodes", nodes);
    bad |= json_object_set(o, "clusters", clusters);
    json_decref(ins);
    json_decref(nodes);
    json_decref(clusters);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *observed_to_json(const struct observed *obs)
{
    return to_json(obs, true);
}

const char *observed_revision(struct observed *obs)
{
    char hex[CRYPTO_SHA256_HEX_SIZE];
    const char *result = NULL;
    json_t *j = NULL;
    char *text = NULL;

    if (obs->revision)
        return obs->revision;
    if (obs->revision_buf[0])
        return obs->revision_buf;
    j = to_json(obs, false);
    if (j == NULL)
        goto out;
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        goto out;
    if (crypto_sha256_hex(hex, text, strlen(text)) != 0)
        goto out;
    /* "sha256:" + 16 hex digits: enough to tell revisions apart in a plan */
    snprintf(obs->revision_buf, sizeof(obs->revision_buf), "sha256:%.16s", hex);
    result = obs->revision_buf;
out:
    free(text);
    json_decref(j);
    return result;
}
