/* cmd_status.c - `reeve status`: what a running `reeve serve` sees, per
 * cluster: its nodes (role, address, health, replication lag), the outcome
 * of applying the branch's last commit, and the actions not yet done.
 *
 * Contract: GET <server>/api/v1/status; the tables (or, with --json, the
 * server's JSON, filtered to one cluster when one is named) go to stdout,
 * errors to stderr. Exit status: 0 shown, 1 the server could not be reached
 * or answered something unusable (or the named cluster is unknown), 2 bad
 * usage or an unreadable configuration file.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"
#include "cli_http.h"
#include "diag.h"
#include "doc.h"

enum { EXIT_SHOWN = 0, EXIT_UNREACHABLE = 1, EXIT_USAGE = 2 };

/* The whole request: the answer is a few KiB per cluster. */
#define STATUS_TIMEOUT_MS 15000L
/* Nodes shown per cluster (a spec allows at most 9 instances). */
#define RV_STATUS_NODES_MAX 64

static const char status_usage[] =
    "usage: reeve status [NAMESPACE/NAME] [--server URL | -c reeve.yaml] [--json]\n";

static const char status_help[] =
    "\n"
    "Show what a running 'reeve serve' sees: for every cluster (or the one\n"
    "named), its nodes as the agents report them, the outcome of applying the\n"
    "deployed branch's last commit (the reeve/apply commit status), and the\n"
    "actions that are not done yet. It only reads: GET <server>/api/v1/status.\n"
    "\n"
    "which server:\n"
    "  --server URL     reeve's base URL, e.g. http://127.0.0.1:8080\n"
    "  -c, --config F   read it from reeve.yaml: its 'listen' address (with\n"
    "                   port 0, the port reeve wrote to <dataDir>/port)\n"
    "  neither          $REEVE_URL, else http://127.0.0.1:8080\n"
    "\n"
    "output:\n"
    "  (default)        per cluster: a header (engine, version, desired\n"
    "                   instances), the apply line, a table of nodes\n"
    "                     NODE  ROLE  ADDRESS  HEALTHY  STREAMING  LAG  LAST REPORT\n"
    "                   and the actions not done (pending, running, failed,\n"
    "                   blocked) with their attempts and last error\n"
    "  --json           the server's JSON as it is ({\"clusters\": [...]}), only\n"
    "                   the named cluster when one is given; for scripts:\n"
    "                     reeve status --json | jq '.clusters[].nodes[] | select(.healthy)'\n"
    "  -h, --help       show this help\n"
    "\n"
    "exit status:\n"
    "  0  shown\n"
    "  1  the server could not be reached, answered an error or something that\n"
    "     is not a status, or knows no cluster by that name\n"
    "  2  bad usage, or a configuration file that cannot be read\n"
    "\n"
    "examples:\n"
    "  reeve status -c /etc/reeve/reeve.yaml\n"
    "      every cluster of the reeve configured there\n"
    "  reeve status payments/billing --server http://127.0.0.1:8080\n"
    "      one cluster\n"
    "  reeve status --json | jq -r '.clusters[] | \"\\(.name) \\(.apply.state)\"'\n"
    "      the apply state of every cluster\n"
    "\n"
    "See docs/demo.md for a whole session on this machine.\n";

struct options {
    const char *cluster; /* NAMESPACE/NAME or NULL */
    const char *server;
    const char *config;
    bool json;
};

/* ---- where the server is ------------------------------------------------ */

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fputs("error: out of memory\n", stderr);
        exit(EXIT_UNREACHABLE);
    }
    return d;
}

/* The directory part of path ("." when none), newly allocated. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) {
        fputs("error: out of memory\n", stderr);
        exit(EXIT_UNREACHABLE);
    }
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* A base URL from reeve.yaml: http://<listen>, with the port from
 * <dataDir>/port when listen ends in :0. Returns NULL (message printed)
 * when the file is unusable for that. */
static char *server_from_config(const char *path, int *why)
{
    *why = EXIT_USAGE;
    struct diag_list diags;
    diag_list_init(&diags);
    struct doc_file *f = NULL;
    char *url = NULL;
    if (doc_load(&f, path, path, &diags) != 0 || !f || f->ndocs < 1 || !f->docs[0]) {
        if (diags.len > 0)
            diag_list_print(stderr, &diags);
        else
            fprintf(stderr, "error: cannot read '%s' as reeve.yaml\n", path);
        goto out;
    }
    const struct doc_node *root = f->docs[0];
    if (root->kind != DOC_MAP) {
        fprintf(stderr, "error: '%s' is not a reeve.yaml (its top level is not a mapping)\n", path);
        goto out;
    }
    const char *listen = "127.0.0.1:8080";
    const struct doc_node *n = doc_map_get(root, "listen");
    if (n && n->kind == DOC_STRING)
        listen = n->u.str.s;
    else if (n) {
        fprintf(stderr, "%s:%u:%u: error: listen: expected a string IP:PORT\n", path, n->line,
                n->col);
        goto out;
    }
    const char *colon = strrchr(listen, ':');
    if (!colon || colon[1] == '\0') {
        fprintf(stderr, "error: %s: listen '%s' has no port\n", path, listen);
        goto out;
    }
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (hl == 0 || hl >= sizeof(host)) {
        fprintf(stderr, "error: %s: listen '%s' has no usable host\n", path, listen);
        goto out;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    char port[16];
    if (strcmp(colon + 1, "0") == 0) {
        const struct doc_node *dd = doc_map_get(root, "dataDir");
        if (!dd || dd->kind != DOC_STRING) {
            fprintf(stderr, "error: %s: listen port 0 and no dataDir to find the bound port in\n",
                    path);
            goto out;
        }
        char *base = dir_of(path);
        char pf[4096];
        if (dd->u.str.s[0] == '/')
            snprintf(pf, sizeof(pf), "%s/port", dd->u.str.s);
        else
            snprintf(pf, sizeof(pf), "%s/%s/port", base, dd->u.str.s);
        free(base);
        FILE *fp = fopen(pf, "r");
        if (!fp) {
            *why = EXIT_UNREACHABLE;
            fprintf(stderr,
                    "error: reeve is not running with '%s' (listen port 0, and '%s' cannot be "
                    "read: %s)\n",
                    path, pf, strerror(errno));
            goto out;
        }
        char line[32] = "";
        if (!fgets(line, sizeof(line), fp))
            line[0] = '\0';
        fclose(fp);
        line[strcspn(line, "\r\n")] = '\0';
        char *end = NULL;
        long p = strtol(line, &end, 10);
        if (end == line || *end != '\0' || p <= 0 || p > 65535) {
            fprintf(stderr, "error: '%s' does not hold a port number\n", pf);
            goto out;
        }
        snprintf(port, sizeof(port), "%ld", p);
    } else {
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    size_t need = strlen(host) + strlen(port) + 16;
    url = malloc(need);
    if (url)
        snprintf(url, need, "http://%s:%s", host, port);
out:
    doc_file_free(f);
    diag_list_release(&diags);
    return url;
}

/* ---- fetching ----------------------------------------------------------- */

/* GET url; on success *out holds the status document. */
static int fetch_status(const char *url, json_t **out)
{
    struct cli_http_req r = {
        .method = "GET", .url = url, .timeout_ms = STATUS_TIMEOUT_MS, .agent = "reeve-status",
        .api = "status API"};
    if (cli_http_json(out, &r) != CLI_HTTP_OK)
        return EXIT_UNREACHABLE;
    if (!json_is_array(json_object_get(*out, "clusters"))) {
        fprintf(stderr, "error: %s: the answer is not a status document (no \"clusters\" array)\n",
                url);
        json_decref(*out);
        *out = NULL;
        return EXIT_UNREACHABLE;
    }
    return EXIT_SHOWN;
}

/* ---- printing ----------------------------------------------------------- */

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && s[0] ? s : dflt;
}

/* Integers, or numbers given as strings; returns false when absent. */
static bool int_of(const json_t *o, const char *key, long long *v)
{
    const json_t *x = json_object_get(o, key);
    if (json_is_integer(x)) {
        *v = (long long)json_integer_value(x);
        return true;
    }
    if (json_is_real(x)) {
        *v = (long long)json_real_value(x);
        return true;
    }
    return false;
}

static const char *yes_no(const json_t *o, const char *key)
{
    const json_t *x = json_object_get(o, key);
    if (json_is_true(x))
        return "yes";
    if (json_is_false(x))
        return "no";
    return "-";
}

static void human_bytes(char *out, size_t n, long long v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        snprintf(out, n, "%lld B", v);
        return;
    }
    double d = (double)v;
    size_t u = 0;
    while (d >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        d /= 1024.0;
        u++;
    }
    snprintf(out, n, "%.1f %s", d, units[u]);
}

/* "2026-11-21T06:09:49Z" (fractions allowed) -> seconds since the epoch. */
static bool parse_rfc3339(const char *s, time_t *out)
{
    struct tm tm = {0};
    int consumed = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return false;
    const char *p = s + consumed;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    if (*p != 'Z' && *p != 'z')
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

static void age_of(char *out, size_t n, const json_t *node)
{
    const json_t *x = json_object_get(node, "last_report");
    time_t t;
    if (json_is_string(x) && parse_rfc3339(json_string_value(x), &t)) {
        long long age = (long long)(time(NULL) - t);
        if (age < 0)
            age = 0;
        if (age < 120)
            snprintf(out, n, "%llds ago", age);
        else if (age < 7200)
            snprintf(out, n, "%lldm ago", age / 60);
        else
            snprintf(out, n, "%s", json_string_value(x));
    } else if (json_is_string(x)) {
        snprintf(out, n, "%s", json_string_value(x));
    } else if (json_is_integer(x)) {
        /* A Unix time in seconds or milliseconds. */
        long long v = (long long)json_integer_value(x);
        if (v > 100000000000LL)
            v /= 1000;
        long long age = (long long)time(NULL) - v;
        snprintf(out, n, "%llds ago", age < 0 ? 0 : age);
    } else {
        snprintf(out, n, "never");
    }
}

static bool action_done(const char *state)
{
    static const char *const done[] = {"succeeded", "canceled", "done", "success", "skipped"};
    for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++)
        if (strcmp(state, done[i]) == 0)
            return true;
    return false;
}

/* Control characters from the server never reach the terminal. */
static void put_clean(const char *s)
{
    for (; *s; s++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* The same, into a buffer (cut to fit); src may be dst. */
static void clean_copy(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
    dst[i] = '\0';
}

static void print_cluster(const json_t *c)
{
    const char *ns = str_or(c, "namespace", "?"), *name = str_or(c, "name", "?");
    long long desired = -1;
    int_of(c, "desired_instances", &desired);
    const json_t *nodes = json_object_get(c, "nodes");
    const json_t *actions = json_object_get(c, "actions");
    size_t nn = json_is_array(nodes) ? json_array_size(nodes) : 0;
    size_t healthy = 0, primaries = 0, streaming = 0;
    for (size_t i = 0; i < nn; i++) {
        const json_t *n = json_array_get(nodes, i);
        bool h = json_is_true(json_object_get(n, "healthy"));
        healthy += h;
        if (h && strcmp(str_or(n, "role", ""), "primary") == 0)
            primaries++;
        if (h && json_is_true(json_object_get(n, "streaming")))
            streaming++;
    }

    put_clean(ns);
    putchar('/');
    put_clean(name);
    fputs("  ", stdout);
    put_clean(str_or(c, "engine", "?"));
    putchar(' ');
    put_clean(str_or(c, "version", "?"));
    if (desired >= 0)
        printf(
            "  instances: %lld desired, %zu reported, %zu healthy (%zu primary, %zu streaming)\n",
            desired, nn, healthy, primaries, streaming);
    else
        printf("  (deleted in the specs)  %zu node(s) reported\n", nn);

    const json_t *apply = json_object_get(c, "apply");
    if (json_is_object(apply)) {
        const char *commit = str_or(apply, "commit", "");
        printf("  apply: %s", str_or(apply, "state", "unknown"));
        if (commit[0])
            printf(" on %.12s", commit);
        const char *text = str_or(apply, "text", "");
        if (text[0]) {
            fputs(": ", stdout);
            put_clean(text);
        }
        putchar('\n');
    } else {
        puts("  apply: nothing applied yet");
    }

    /* Nodes in name order (shop-2 before shop-10). */
    size_t order[RV_STATUS_NODES_MAX];
    if (nn > RV_STATUS_NODES_MAX)
        nn = RV_STATUS_NODES_MAX;
    for (size_t i = 0; i < nn; i++)
        order[i] = i;
    for (size_t i = 1; i < nn; i++) {
        for (size_t k = i; k > 0; k--) {
            const char *prev = str_or(json_array_get(nodes, order[k - 1]), "name", "");
            const char *cur = str_or(json_array_get(nodes, order[k]), "name", "");
            if (strverscmp(prev, cur) <= 0)
                break;
            size_t t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    }
    if (nn > 0) {
        printf("  %-20s %-8s %-22s %-8s %-10s %-11s %s\n", "NODE", "ROLE", "ADDRESS", "HEALTHY",
               "STREAMING", "LAG", "LAST REPORT");
        for (size_t i = 0; i < nn; i++) {
            const json_t *n = json_array_get(nodes, order[i]);
            char addr[96], lag[32], age[64];
            long long port = 0, lb = 0;
            const char *a = str_or(n, "address", "-");
            if (int_of(n, "port", &port) && port > 0)
                snprintf(addr, sizeof(addr), "%s:%lld", a, port);
            else
                snprintf(addr, sizeof(addr), "%s", a);
            if (int_of(n, "lag_bytes", &lb) && lb >= 0)
                human_bytes(lag, sizeof(lag), lb);
            else if (int_of(n, "lag_transactions", &lb) && lb >= 0)
                snprintf(lag, sizeof(lag), "%lld trx", lb);
            else
                snprintf(lag, sizeof(lag), "-");
            age_of(age, sizeof(age), n);
            char nname[64], role[16];
            clean_copy(nname, sizeof(nname), str_or(n, "name", "?"));
            clean_copy(role, sizeof(role), str_or(n, "role", "-"));
            clean_copy(addr, sizeof(addr), addr);
            printf("  %-20s %-8s %-22s %-8s %-10s %-11s %s\n", nname, role, addr,
                   yes_no(n, "healthy"),
                   strcmp(role, "primary") == 0 ? "-" : yes_no(n, "streaming"), lag, age);
        }
    } else {
        puts("  no node has reported");
    }

    size_t na = json_is_array(actions) ? json_array_size(actions) : 0, shown = 0, finished = 0,
           canceled = 0;
    for (size_t i = 0; i < na; i++) {
        const json_t *a = json_array_get(actions, i);
        if (action_done(str_or(a, "state", ""))) {
            if (strcmp(str_or(a, "state", ""), "canceled") == 0)
                canceled++;
            else
                finished++;
            continue;
        }
        if (shown++ == 0)
            printf("  %-20s %-20s %-9s %-8s %s\n", "ACTION", "NODE", "STATE", "ATTEMPTS",
                   "LAST ERROR");
        long long attempts = 0;
        if (!int_of(a, "attempts", &attempts))
            attempts = 0;
        char kind[40], node[64], state[24];
        clean_copy(kind, sizeof(kind), str_or(a, "kind", "-"));
        clean_copy(node, sizeof(node), str_or(a, "node", "-"));
        clean_copy(state, sizeof(state), str_or(a, "state", "-"));
        printf("  %-20s %-20s %-9s %-8lld ", kind, node, state, attempts);
        put_clean(str_or(a, "last_error", "-"));
        putchar('\n');
    }
    if (shown == 0)
        puts("  no action pending");
    if (finished || canceled) {
        printf("  (%zu action(s) done", finished);
        if (canceled)
            printf(", %zu canceled", canceled);
        puts(")");
    }
}

/* ---- the command -------------------------------------------------------- */

static int parse_args(struct options *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        const char *name = NULL;
        if (strcmp(a, "--server") == 0 || strncmp(a, "--server=", 9) == 0) {
            slot = &o->server;
            name = "--server";
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
                   strncmp(a, "--config=", 9) == 0) {
            slot = &o->config;
            name = a[1] == 'c' ? "-c" : "--config";
        }
        if (slot) {
            const char *eq = strchr(a, '=');
            if (eq && a[1] == '-') {
                *slot = eq + 1;
            } else if (i + 1 < argc) {
                *slot = argv[++i];
            } else {
                fprintf(stderr, "error: option '%s' needs a value\n%s", name, status_usage);
                return EXIT_USAGE;
            }
            if (!**slot) {
                fprintf(stderr, "error: option '%s' needs a non-empty value\n%s", name,
                        status_usage);
                return EXIT_USAGE;
            }
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(status_usage, stdout);
            fputs(status_help, stdout);
            return -1;
        } else if (a[0] == '-') {
            fprintf(stderr, "error: unknown option '%s'\n%s", a, status_usage);
            return EXIT_USAGE;
        } else if (o->cluster) {
            fprintf(stderr, "error: one cluster at most ('%s' and '%s')\n%s", o->cluster, a,
                    status_usage);
            return EXIT_USAGE;
        } else {
            const char *slash = strchr(a, '/');
            if (!slash || slash == a || slash[1] == '\0' || strchr(slash + 1, '/')) {
                fprintf(stderr, "error: '%s' is not NAMESPACE/NAME\n%s", a, status_usage);
                return EXIT_USAGE;
            }
            o->cluster = a;
        }
    }
    if (o->server && o->config) {
        fprintf(stderr, "error: give --server or -c, not both\n%s", status_usage);
        return EXIT_USAGE;
    }
    return 0;
}

static bool is_cluster(const json_t *c, const char *want)
{
    const char *ns = str_or(c, "namespace", ""), *name = str_or(c, "name", "");
    size_t nl = strlen(ns);
    return strncmp(want, ns, nl) == 0 && want[nl] == '/' && strcmp(want + nl + 1, name) == 0;
}

int cmd_status(int argc, char **argv)
{
    struct options o = {0};
    int rc = parse_args(&o, argc, argv);
    if (rc < 0)
        return EXIT_SHOWN;
    if (rc != 0)
        return rc;

    char *base = NULL;
    if (o.server) {
        if (strncmp(o.server, "http://", 7) != 0 && strncmp(o.server, "https://", 8) != 0) {
            fprintf(stderr, "error: --server '%s' is not an http:// or https:// URL\n%s", o.server,
                    status_usage);
            return EXIT_USAGE;
        }
        base = xstrdup(o.server);
    } else if (o.config) {
        int why = EXIT_USAGE;
        base = server_from_config(o.config, &why);
        if (!base)
            return why;
    } else {
        const char *env = getenv("REEVE_URL");
        base = xstrdup(env && env[0] ? env : "http://127.0.0.1:8080");
    }
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        base[--bl] = '\0';
    size_t ul = bl + sizeof("/api/v1/status");
    char *url = malloc(ul);
    if (!url) {
        free(base);
        fputs("error: out of memory\n", stderr);
        return EXIT_UNREACHABLE;
    }
    snprintf(url, ul, "%s/api/v1/status", base);
    free(base);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(url);
        fputs("error: cannot initialise libcurl\n", stderr);
        return EXIT_UNREACHABLE;
    }
    json_t *doc = NULL;
    rc = fetch_status(url, &doc);
    curl_global_cleanup();
    if (rc != EXIT_SHOWN) {
        free(url);
        return rc;
    }

    json_t *clusters = json_object_get(doc, "clusters");
    if (o.cluster) {
        json_t *only = json_array();
        for (size_t i = 0; i < json_array_size(clusters); i++) {
            json_t *c = json_array_get(clusters, i);
            if (is_cluster(c, o.cluster))
                json_array_append(only, c);
        }
        if (json_array_size(only) == 0) {
            fprintf(stderr, "error: reeve at %s knows no cluster '%s'\n", url, o.cluster);
            json_decref(only);
            json_decref(doc);
            free(url);
            return EXIT_UNREACHABLE;
        }
        json_object_set_new(doc, "clusters", only);
        clusters = only;
    }
    free(url);

    if (o.json) {
        json_dumpf(doc, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else if (json_array_size(clusters) == 0) {
        puts("no clusters: reeve knows of none (no specs on the deployed branch, no nodes "
             "reporting)");
    } else {
        for (size_t i = 0; i < json_array_size(clusters); i++) {
            if (i > 0)
                putchar('\n');
            print_cluster(json_array_get(clusters, i));
        }
    }
    json_decref(doc);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "error: cannot write the output: %s\n", strerror(errno));
        return EXIT_UNREACHABLE;
    }
    return EXIT_SHOWN;
}
