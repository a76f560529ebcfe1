/* cmd_backups.c - `reeve backups`: the backups a running `reeve serve`
 * knows of (list), one of them with its log lines (show), and checking one
 * of them against its destination (verify).
 *
 * Contract: GET <server>/api/v1/backups[?cluster=NS/NAME], GET
 * <server>/api/v1/backups/<id> and POST <server>/api/v1/backups/<id>/verify
 * (docs/serve.md); tables (or, with --json, the server's JSON) to stdout,
 * errors to stderr. Exit status: list and show 0 shown; verify 0 the
 * backup checks out, 1 it does not; all 2 for bad usage, a server that
 * cannot be reached or answers an error (an unknown id included).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"
#include "cli_http.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* A list of a year of backups of a few dozen clusters is a few MiB. */
#define BACKUPS_LIST_TIMEOUT_MS 15000L
/* A verification reads the whole object from the destination. */
#define BACKUPS_VERIFY_TIMEOUT_MS (6L * 3600L * 1000L)
#define DEFAULT_SERVER "http://127.0.0.1:8080"

static const char backups_usage[] =
    "usage: reeve backups list [NAMESPACE/NAME] [--server URL] [--json]\n"
    "       reeve backups show BACKUP_ID [--server URL] [--json]\n"
    "       reeve backups verify BACKUP_ID [--server URL] [--json]\n";

static const char backups_help[] =
    "\n"
    "The backups a running 'reeve serve' knows of: every backup the agents\n"
    "took (scheduled, manual, final, or asked for by reeve) is reported to it\n"
    "with its size, checksum and outcome.\n"
    "\n"
    "commands:\n"
    "  list [NAMESPACE/NAME]   every backup, newest first, of all clusters or\n"
    "                          of the one named, as a table\n"
    "                            ID  CLUSTER  TYPE  STATUS  STARTED  DURATION\n"
    "                            SIZE  NODE  VERIFIED\n"
    "                          (SIZE is what the destination stores: compressed,\n"
    "                          and encrypted when the cluster has a key), then\n"
    "                          the error of every failed backup\n"
    "  show BACKUP_ID          one backup: every field of its record (where\n"
    "                          it is stored, its size, checksum, WAL positions,\n"
    "                          the last verification), then its log lines as\n"
    "                          the agent wrote them, oldest first\n"
    "                            2026-11-21 08:05:01.123Z  info   started ...\n"
    "                          The agent keeps its log in its local database\n"
    "                          and sends it with the records, also after the\n"
    "                          reconciler was away: a backup taken meanwhile\n"
    "                          shows its whole log once the agent reached reeve\n"
    "  verify BACKUP_ID        read the backup from its destination (S3 or a\n"
    "                          local directory) and check it: its size, its\n"
    "                          SHA-256, and - when reeve has the cluster's\n"
    "                          backupKey, or the backup is not encrypted -\n"
    "                          every chunk, decrypted and decompressed. The\n"
    "                          outcome is recorded: 'list' shows it under\n"
    "                          VERIFIED. It can take as long as reading the\n"
    "                          whole backup.\n"
    "\n"
    "options:\n"
    "  --server URL     reeve's base URL (default: $REEVE_URL, else\n"
    "                   " DEFAULT_SERVER ")\n"
    "  --json           the server's JSON as it is, for scripts:\n"
    "                     reeve backups list --json | jq -r '.backups[0].backup_id'\n"
    "  -h, --help       show this help\n"
    "\n"
    "exit status:\n"
    "  0  shown (list, show); the backup checks out (verify)\n"
    "  1  verify: the backup is damaged, truncated or missing\n"
    "  2  bad usage, an unknown backup id, or the server cannot be reached\n"
    "     or answered an error\n"
    "\n"
    "examples:\n"
    "  reeve backups list payments/billing\n"
    "  reeve backups show 20261121T080501Z-3fa9c2d1\n"
    "  reeve backups show 20261121T080501Z-3fa9c2d1 --json | jq -r '.logs[].line'\n"
    "  reeve backups verify 20261121T080501Z-3fa9c2d1\n"
    "  reeve backups list --json | jq '.backups[] | select(.status == \"failed\")'\n"
    "\n"
    "Restoring a backup into a new cluster is declared in its spec\n"
    "(bootstrap.fromBackup): see docs/restore.md.\n";

struct options {
    const char *verb;
    const char *arg; /* cluster (list) or backup id (show, verify) */
    const char *server;
    bool json;
};

/* ---- HTTP --------------------------------------------------------------- */

/* method url: *out the JSON object of a 200 answer. Returns EXIT_OK, or
 * EXIT_USAGE when no usable answer came (the reason is printed). */
static int request(const char *method, const char *url, long timeout_ms, json_t **out)
{
    struct cli_http_req r = {.method = method,
                             .url = url,
                             .timeout_ms = timeout_ms,
                             .agent = "reeve-backups",
                             .api = "backups API"};
    return cli_http_json(out, &r) == CLI_HTTP_OK ? EXIT_OK : EXIT_USAGE;
}

/* ---- formatting ---------------------------------------------------------- */

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && s[0] != '\0' ? s : dflt;
}

/* "2026-11-21T08:05:01.123Z" -> "2026-11-21 08:05:01Z" */
static void time_short(char *out, size_t cap, const char *t)
{
    if (t == NULL || strlen(t) < 19) {
        snprintf(out, cap, "-");
        return;
    }
    snprintf(out, cap, "%.10s %.8sZ", t, t + 11);
}

static void duration_text(char *out, size_t cap, const json_t *v)
{
    if (!json_is_integer(v)) {
        snprintf(out, cap, "-");
        return;
    }
    long long ms = (long long)json_integer_value(v), s = ms / 1000;
    if (ms < 1000)
        snprintf(out, cap, "%lldms", ms);
    else if (s < 60)
        snprintf(out, cap, "%lld.%llds", s, (ms % 1000) / 100);
    else if (s < 3600)
        snprintf(out, cap, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(out, cap, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
}

static void size_text(char *out, size_t cap, const json_t *v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!json_is_integer(v)) {
        snprintf(out, cap, "-");
        return;
    }
    double x = (double)json_integer_value(v);
    size_t u = 0;
    while (x >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        x /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%.0f B", x);
    else
        snprintf(out, cap, "%.1f %s", x, units[u]);
}

static void verified_text(char *out, size_t cap, const json_t *v)
{
    if (!json_is_object(v)) {
        snprintf(out, cap, "-");
        return;
    }
    const char *at = str_or(v, "at", "");
    snprintf(out, cap, "%s %.10s", str_or(v, "status", "?"), at);
}

enum { COLS = 9, CELL = 96 };

static void print_table(FILE *out, const json_t *list)
{
    static const char *const head[COLS] = {"ID",       "CLUSTER", "TYPE", "STATUS",  "STARTED",
                                           "DURATION", "SIZE",    "NODE", "VERIFIED"};
    size_t n = json_array_size(list), width[COLS];
    char(*cells)[COLS][CELL] = calloc(n ? n : 1, sizeof(*cells));
    if (cells == NULL) {
        fputs("error: out of memory\n", stderr);
        return;
    }
    for (size_t c = 0; c < COLS; c++)
        width[c] = strlen(head[c]);
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(list, i);
        snprintf(cells[i][0], CELL, "%s", str_or(r, "backup_id", "?"));
        snprintf(cells[i][1], CELL, "%s", str_or(r, "cluster", "?"));
        snprintf(cells[i][2], CELL, "%s", str_or(r, "type", "?"));
        snprintf(cells[i][3], CELL, "%s", str_or(r, "status", "?"));
        time_short(cells[i][4], CELL, json_string_value(json_object_get(r, "started_at")));
        duration_text(cells[i][5], CELL, json_object_get(r, "duration_ms"));
        size_text(cells[i][6], CELL, json_object_get(r, "size"));
        snprintf(cells[i][7], CELL, "%s", str_or(r, "node", "-"));
        verified_text(cells[i][8], CELL, json_object_get(r, "verify"));
        for (size_t c = 0; c < COLS; c++)
            if (strlen(cells[i][c]) > width[c])
                width[c] = strlen(cells[i][c]);
    }
    for (size_t c = 0; c < COLS; c++)
        fprintf(out, "%-*s%s", c + 1 < COLS ? (int)width[c] : 0, head[c],
                c + 1 < COLS ? "  " : "\n");
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < COLS; c++)
            fprintf(out, "%-*s%s", c + 1 < COLS ? (int)width[c] : 0, cells[i][c],
                    c + 1 < COLS ? "  " : "\n");
    free(cells);
    bool header = false;
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(list, i);
        const json_t *v = json_object_get(r, "verify");
        bool failed = strcmp(str_or(r, "status", ""), "failed") == 0;
        bool vfailed = strcmp(str_or(v, "status", ""), "failed") == 0;
        if (!failed && !vfailed)
            continue;
        if (!header)
            fputs("\nproblems:\n", out);
        header = true;
        if (failed)
            fprintf(out, "  %s: backup failed: %s\n", str_or(r, "backup_id", "?"),
                    str_or(r, "error", "no error given"));
        if (vfailed)
            fprintf(out, "  %s: verification failed: %s\n", str_or(r, "backup_id", "?"),
                    str_or(v, "error", "no error given"));
    }
}

/* ---- commands ------------------------------------------------------------ */

static int do_list(const struct options *o)
{
    char url[2048];
    json_t *j = NULL;
    if (o->arg != NULL)
        snprintf(url, sizeof(url), "%s/api/v1/backups?cluster=%s", o->server, o->arg);
    else
        snprintf(url, sizeof(url), "%s/api/v1/backups", o->server);
    int rc = request("GET", url, BACKUPS_LIST_TIMEOUT_MS, &j);
    if (rc != EXIT_OK)
        return rc;
    json_t *list = json_object_get(j, "backups");
    if (!json_is_array(list)) {
        fprintf(stderr, "error: %s: the answer has no \"backups\" array\n", url);
        json_decref(j);
        return EXIT_USAGE;
    }
    if (o->json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else if (json_array_size(list) == 0) {
        printf("no backups%s%s are known to reeve yet\n", o->arg ? " of " : "",
               o->arg ? o->arg : "");
    } else {
        print_table(stdout, list);
    }
    json_decref(j);
    return EXIT_OK;
}

/* Text from the server written so that no byte can drive the terminal:
 * control characters (C0, DEL, C1) print as '?'. */
static void put_safe(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; p[i] != '\0'; i++) {
        if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
            fputc('?', out);
            i++;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            fputc('?', out);
        } else {
            fputc(p[i], out);
        }
    }
}

/* A field's value as one line: strings as they are, null "-", lists
 * space-separated, objects (verify) as compact JSON. */
static void value_text(char *out, size_t cap, const json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        snprintf(out, cap, "-");
    } else if (json_is_string(v)) {
        snprintf(out, cap, "%s", json_string_value(v));
    } else if (json_is_array(v)) {
        size_t i, n = 0;
        json_t *x;
        out[0] = '\0';
        json_array_foreach(v, i, x)
        {
            char one[256];
            value_text(one, sizeof(one), x);
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", i ? " " : "", one);
            if (n >= cap)
                break;
        }
        if (json_array_size(v) == 0)
            snprintf(out, cap, "(none)");
    } else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        snprintf(out, cap, "%s", t != NULL ? t : "?");
        free(t);
    }
}

/* The record's fields in the contract's order, then any other field. */
static void print_record(FILE *out, const json_t *r)
{
    static const char *const order[] = {
        "backup_id",   "set_id",        "cluster",        "node",    "type",       "method",
        "params",      "schedule",      "status",         "error",   "started_at", "ended_at",
        "duration_ms", "location",      "name",           "size",    "raw_size",   "checksum",
        "encrypted",   "compression",   "retention_days", "schemas", "start_lsn",  "end_lsn",
        "timeline",    "consistent_at", "parent",         "gtid",    "verify",     NULL};
    char v[4096], extra[64];
    const char *k;
    json_t *x;
    for (size_t i = 0; order[i] != NULL; i++) {
        x = json_object_get(r, order[i]);
        if (x == NULL)
            continue;
        value_text(v, sizeof(v), x);
        if (strcmp(order[i], "schemas") == 0 && json_array_size(x) == 0)
            snprintf(v, sizeof(v), "(all)");
        if ((strcmp(order[i], "size") == 0 || strcmp(order[i], "raw_size") == 0) &&
            json_is_integer(x)) {
            size_text(extra, sizeof(extra), x);
            snprintf(v + strlen(v), sizeof(v) - strlen(v), " (%s)", extra);
        } else if (strcmp(order[i], "duration_ms") == 0 && json_is_integer(x)) {
            duration_text(extra, sizeof(extra), x);
            snprintf(v + strlen(v), sizeof(v) - strlen(v), " (%s)", extra);
        }
        fprintf(out, "%-15s ", order[i]);
        put_safe(out, v);
        fputc('\n', out);
    }
    json_object_foreach((json_t *)r, k, x)
    {
        bool known = false;
        for (size_t i = 0; order[i] != NULL && !known; i++)
            known = strcmp(k, order[i]) == 0;
        if (known)
            continue;
        value_text(v, sizeof(v), x);
        put_safe(out, k);
        fprintf(out, "%*s ", strlen(k) < 15 ? (int)(15 - strlen(k)) : 0, "");
        put_safe(out, v);
        fputc('\n', out);
    }
}

static void print_logs(FILE *out, const json_t *logs)
{
    size_t i, n = json_array_size(logs);
    json_t *l;
    if (n == 0) {
        fputs("\nlog: no lines yet (the agent sends them with its records)\n", out);
        return;
    }
    fprintf(out, "\nlog (%zu line%s):\n", n, n == 1 ? "" : "s");
    json_array_foreach(logs, i, l)
    {
        const char *at = str_or(l, "at", "");
        char when[40];
        /* "2026-11-21T08:05:01.123Z" -> "2026-11-21 08:05:01.123Z" */
        if (strlen(at) >= 20 && strlen(at) < sizeof(when))
            snprintf(when, sizeof(when), "%.10s %s", at, at + 11);
        else
            snprintf(when, sizeof(when), "%s", at);
        put_safe(out, when);
        fprintf(out, "  %-5s  ", str_or(l, "level", "?"));
        put_safe(out, str_or(l, "line", ""));
        fputc('\n', out);
    }
}

static int do_show(const struct options *o)
{
    char url[2048];
    json_t *j = NULL;
    snprintf(url, sizeof(url), "%s/api/v1/backups/%s", o->server, o->arg);
    int rc = request("GET", url, BACKUPS_LIST_TIMEOUT_MS, &j);
    if (rc != EXIT_OK)
        return rc;
    const json_t *r = json_object_get(j, "record");
    const json_t *logs = json_object_get(j, "logs");
    if (!json_is_object(r) || !json_is_array(logs)) {
        fprintf(stderr, "error: %s: the answer has no \"record\" object and \"logs\" array\n", url);
        json_decref(j);
        return EXIT_USAGE;
    }
    if (o->json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        print_record(stdout, r);
        print_logs(stdout, logs);
    }
    json_decref(j);
    return EXIT_OK;
}

static int do_verify(const struct options *o)
{
    char url[2048];
    json_t *j = NULL;
    snprintf(url, sizeof(url), "%s/api/v1/backups/%s/verify", o->server, o->arg);
    int rc = request("POST", url, BACKUPS_VERIFY_TIMEOUT_MS, &j);
    if (rc != EXIT_OK)
        return rc;
    const char *result = str_or(j, "result", "");
    const json_t *v = json_object_get(j, "verify");
    const json_t *r = json_object_get(j, "record");
    if (o->json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else if (strcmp(result, "ok") == 0) {
        printf("backup %s of %s: ok (size and SHA-256 match; %s)\n", o->arg,
               str_or(r, "cluster", "?"),
               json_is_true(json_object_get(j, "chunks_decoded"))
                   ? "every chunk decoded and authenticated"
                   : "encrypted, and reeve.yaml has no key for it: chunks not decoded");
    } else {
        printf("backup %s of %s: FAILED: %s\n", o->arg, str_or(r, "cluster", "?"),
               str_or(v, "error", "no reason given"));
    }
    rc = strcmp(result, "ok") == 0 ? EXIT_OK : EXIT_FAILED;
    json_decref(j);
    return rc;
}

static bool cluster_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash != NULL && slash != s && slash[1] != '\0' && strchr(slash + 1, '/') == NULL &&
           strlen(s) <= 127 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-/") == strlen(s);
}

static bool id_ok(const char *s)
{
    return s[0] != '\0' && strlen(s) <= 128 && s[0] != '.' && s[0] != '-' &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
               strlen(s);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(backups_usage, stderr);
    return EXIT_USAGE;
}

int cmd_backups(int argc, char **argv)
{
    struct options o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(backups_usage, stdout);
            fputs(backups_help, stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--server") == 0) {
            if (i + 1 >= argc)
                return usage_error("%s needs a URL", a);
            o.server = argv[++i];
        } else if (strncmp(a, "--server=", 9) == 0) {
            o.server = a + 9;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (o.verb == NULL) {
            o.verb = a;
        } else if (o.arg == NULL) {
            o.arg = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (o.verb == NULL)
        return usage_error("%s", "say what to do: list, show or verify");
    if (o.server == NULL)
        o.server = getenv("REEVE_URL") != NULL && getenv("REEVE_URL")[0] != '\0'
                       ? getenv("REEVE_URL")
                       : DEFAULT_SERVER;
    if (strncmp(o.server, "http://", 7) != 0 && strncmp(o.server, "https://", 8) != 0)
        return usage_error("--server '%s' is not an http:// or https:// URL", o.server);
    char server[1024];
    snprintf(server, sizeof(server), "%s", o.server);
    for (size_t n = strlen(server); n > 0 && server[n - 1] == '/'; n--)
        server[n - 1] = '\0';
    o.server = server;
    if (strcmp(o.verb, "list") == 0) {
        if (o.arg != NULL && !cluster_ok(o.arg))
            return usage_error("'%s' is not NAMESPACE/NAME, e.g. payments/billing", o.arg);
        return do_list(&o);
    }
    if (strcmp(o.verb, "show") == 0) {
        if (o.arg == NULL)
            return usage_error("%s", "show needs a backup id; 'reeve backups list' shows them");
        if (!id_ok(o.arg))
            return usage_error("'%s' is not a backup id (letters, digits, '.', '_', '-')", o.arg);
        return do_show(&o);
    }
    if (strcmp(o.verb, "verify") == 0) {
        if (o.arg == NULL)
            return usage_error("%s", "verify needs a backup id; 'reeve backups list' shows them");
        if (!id_ok(o.arg))
            return usage_error("'%s' is not a backup id (letters, digits, '.', '_', '-')", o.arg);
        return do_verify(&o);
    }
    return usage_error("unknown command '%s'; use list, show or verify", o.verb);
}
