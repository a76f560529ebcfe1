/* cmd_serve.c - `reeve serve`: run the GitOps loop (see serve.h). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "config.h"
#include "diag.h"
#include "err.h"
#include "log.h"
#include "schema.h"
#include "serve.h"
#include "source.h"

static const char serve_usage[] = "usage: reeve serve -c FILE [--check]\n";

static const char serve_help[] =
    "\n"
    "Run reeve's GitOps loop: keep a mirror of the spec repository, and for\n"
    "every pull request into the main branch validate and plan its head commit\n"
    "and post the result as commit statuses; for every new commit of the main\n"
    "branch store its plan and mark it 'reeve/apply: pending'. It also serves\n"
    "the forge's webhooks, /healthz, /metrics and a page per plan.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE  the configuration (reeve.yaml); see below\n"
    "  --check            only check FILE (and that its secrets resolve), print\n"
    "                     what is wrong with file:line:col, exit 0 if it is usable\n"
    "  -h, --help         show this help\n"
    "\n"
    "reeve.yaml:\n"
    "  listen: 127.0.0.1:8080            # loopback only; port 0 picks one (see dataDir/port)\n"
    "  publicURL: https://reeve.example  # base of the links in statuses\n"
    "  dataDir: /var/lib/reeve           # state.db and mirror.git; created if missing\n"
    "  log: {level: info, format: text}  # format: text | json\n"
    "  repository:\n"
    "    url: https://git.example/acme/specs.git   # or file:///path, or a local path\n"
    "    branch: main\n"
    "    pollInterval: 60                # seconds; 0 = webhooks only (+ one fetch at start)\n"
    "    auth: {kind: token, secretRef: env:REEVE_GIT_TOKEN}   # none | token | basic\n"
    "  forge:\n"
    "    kind: github                    # github | gitea | gitlab | none\n"
    "    apiURL: https://api.github.com\n"
    "    repository: acme/specs\n"
    "    tokenRef: env:REEVE_FORGE_TOKEN # may create commit statuses\n"
    "    webhookSecretRef: file:/etc/reeve/webhook-secret\n"
    "  ticks: {base: 10, fast: 1}        # seconds\n"
    "Secrets are references, env:NAME or file:PATH, read at start.\n"
    "docs/configuration.md describes every key.\n"
    "\n"
    "what it serves:\n"
    "  POST /hooks/<forge>      webhooks (push, pull request), verified with the secret;\n"
    "                           each schedules an immediate fetch\n"
    "  GET  /healthz            200 {\"status\":\"ok\",...} once a fetch has succeeded, else 503\n"
    "  GET  /metrics            Prometheus text (passes, fetch times, statuses, webhooks)\n"
    "  GET  /plans/<sha>        the validation and plan of a commit (add ?format=json)\n"
    "\n"
    "statuses on pull request heads: reeve/validate ('N clusters valid' or the first\n"
    "error) and reeve/plan ('Plan: 1 to add, 0 to change, 0 to destroy.' or 'No\n"
    "changes.'); on main commits: reeve/apply pending. Each links to its plan page.\n"
    "\n"
    "signals: SIGINT or SIGTERM stop gracefully (work in flight gets about 35 s);\n"
    "SIGHUP fetches at once.\n"
    "\n"
    "exit status: 0 stopped cleanly (or --check passed), 1 configuration or start-up\n"
    "error (or --check failed), 2 bad usage.\n"
    "\n"
    "examples:\n"
    "  reeve serve -c /etc/reeve/reeve.yaml --check\n"
    "  REEVE_FORGE_TOKEN=... REEVE_WEBHOOK_SECRET=... reeve serve -c reeve.yaml\n"
    "  curl -s localhost:8080/plans/$(git rev-parse HEAD)?format=json | jq .validation\n"
    "\n"
    "See docs/serve.md for endpoints, statuses, metrics and logs.\n";

int cmd_serve(int argc, char **argv)
{
    const char *path = NULL;
    bool check = false;
    struct config cfg;
    struct diag_list diags;
    struct rv_error err = {0};
    struct serve *s = NULL;
    bool curl_up = false, source_up = false;
    int status = 1;

    config_init(&cfg);
    diag_list_init(&diags);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "error: option '%s' needs a file\n%s", a, serve_usage);
                status = 2;
                goto out;
            }
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(serve_usage, stdout);
            fputs(serve_help, stdout);
            status = 0;
            goto out;
        } else {
            fprintf(stderr, "error: %s '%s'\n%srun 'reeve serve --help' for the options\n",
                    a[0] == '-' ? "unknown option" : "unexpected argument", a, serve_usage);
            status = 2;
            goto out;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "error: no configuration; give one with -c reeve.yaml\n%s", serve_usage);
        status = 2;
        goto out;
    }

    int rc = config_load(&cfg, path, &diags, &err);
    diag_list_sort(&diags);
    diag_list_print(stderr, &diags);
    if (rc != 0) {
        fprintf(stderr, "error: %s%s\n", err.msg[0] ? err.msg : rv_strerror(rc),
                rc == RV_EINVAL ? "; fix it and run 'reeve serve -c FILE --check'" : "");
        goto out;
    }
    if (check) {
        printf("%s: ok (listen %s, dataDir %s, repository %s, forge %s)\n", path, cfg.listen,
               cfg.data_dir, cfg.repository.url, config_forge_name(&cfg));
        status = 0;
        goto out;
    }
    log_set_level(cfg.log_level);
    log_set_json(cfg.log_json);

    /* Process-wide set-up, before any thread starts. */
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("serve", "cannot initialise libcurl");
        goto out;
    }
    curl_up = true;
    static const enum schema_id schemas[] = {SCHEMA_CLUSTER, SCHEMA_CLUSTER_TF, SCHEMA_POLICY};
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        if (schema_get(schemas[i], &err) == NULL) {
            log_error("serve", "%s", err.msg);
            goto out;
        }
    }
    if (source_global_init(0, &err) != 0) {
        log_error("serve", "%s", err.msg);
        goto out;
    }
    source_up = true;

    struct serve_options opt = {.handle_signals = true};
    rc = serve_new(&s, &cfg, &opt, &err);
    if (rc != 0) {
        log_error("serve", "cannot start: %s", err.msg);
        goto out;
    }
    rc = serve_run(s);
    if (rc == RV_ETIMEOUT) {
        /* Work abandoned at shutdown still runs on a worker thread: leave
         * the libraries it uses alone and let the process end. */
        curl_up = source_up = false;
        s = NULL;
        status = 1;
        goto out;
    }
    status = 0;
out:
    serve_free(s);
    if (source_up)
        source_global_shutdown();
    if (curl_up)
        curl_global_cleanup();
    config_release(&cfg);
    diag_list_release(&diags);
    return status;
}
