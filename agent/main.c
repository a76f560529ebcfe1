/* main.c - reeve-agent: the node agent (docs/agent.md). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include "agent.h"
#include "backup_cmd.h"
#include "backupd.h"
#include "config.h"
#include "diag.h"
#include "log.h"
#include "restore_cmd.h"

struct app {
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct agent *agent;
    int rc;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: reeve-agent -c <agent.yaml> [--log-level debug|info|warn|error] [--log-json]\n"
            "       reeve-agent wal-push|wal-fetch|backup|backups ... -c <agent.yaml> (docs/backups.md)\n"
            "       reeve-agent restore -c <agent.yaml> --to <dir> ... (docs/restore.md)\n"
            "       reeve-agent --help | --version\n"
            "\n"
            "Runs one database node of a reeve cluster: registers with the reconciler,\n"
            "bootstraps the node as primary or replica, keeps its state and the leader\n"
            "lock in the reconciler's DCS, and fences a primary that loses its lock.\n"
            "SIGTERM or SIGINT stops the server (fast shutdown) and releases the lock.\n"
            "See docs/agent.md for the configuration.\n");
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    log_info("main", "signal %d: stopping", signum);
    agent_stop(app->agent);
}

static void on_done(struct agent *a, int rc, void *payload)
{
    struct app *app = payload;
    (void)a;
    app->rc = rc;
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    struct agent_config cfg;
    struct diag_list diags;
    struct rv_error err = {0};
    struct app app = {0};
    struct backupd *bd = NULL;
    char exe[RV_PG_PATH_MAX + 1] = "";
    uv_loop_t loop;
    bool loop_ok = false, cfg_ok = false;
    int rc = 1;
    diag_list_init(&diags);
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && backup_cmd_is(argv[1]))
        return backup_cmd_main(argc, argv);
    if (argc > 1 && restore_cmd_is(argv[1]))
        return restore_cmd_main(argc, argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("reeve-agent %s\n", REEVE_VERSION);
            rc = 0;
            goto out;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            enum log_level lvl;
            if (log_level_parse(&lvl, argv[++i]) != 0) {
                fprintf(stderr, "error: unknown log level '%s'\n", argv[i]);
                rc = 2;
                goto out;
            }
            log_set_level(lvl);
        } else if (strcmp(argv[i], "--log-json") == 0) {
            log_set_json(true);
        } else {
            fprintf(stderr, "error: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            rc = 2;
            goto out;
        }
    }
    if (path == NULL) {
        usage(stderr);
        rc = 2;
        goto out;
    }
    if (agent_config_load(&cfg, path, &diags) != 0) {
        diag_list_sort(&diags);
        diag_list_print(stderr, &diags);
        rc = 2;
        goto out;
    }
    cfg_ok = true;
    /* Without archive_command the node still runs and takes full backups;
     * only point-in-time recovery is lost, so this is loud, not fatal.
     * MariaDB has no WAL archive: its backups are full and incremental. */
    if (backup_self_exe(exe, sizeof(exe), &err) != 0)
        log_error("main", "backups are off on this node: %s", err.msg);
    else if (cfg.engine_type == ENGINE_POSTGRESQL && backup_engine_params(&cfg, exe, &err) != 0)
        log_error("main", "WAL archiving is off on this node: %s", err.msg);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "error: cannot initialize libcurl\n");
        goto out;
    }
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "error: cannot initialize the event loop\n");
        goto out;
    }
    loop_ok = true;
    if (agent_new(&app.agent, &loop, &cfg, on_done, &app, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        goto out;
    }
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_init(&loop, &app.sigint);
    app.sigterm.data = &app;
    app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    if (agent_start(app.agent, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        agent_stop(app.agent);
    } else {
        /* After agent_start: the watchdog has forked before any thread. */
        struct backupd_opts bo = {.cfg = &cfg, .exe = exe};
        if (exe[0] != '\0' && backupd_start(&bd, &bo, &err) != 0)
            log_error("main", "backups are off on this node: %s", err.msg);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    backupd_stop(bd);
    rc = app.rc == 0 ? 0 : 1;
out:
    agent_free(app.agent);
    if (loop_ok)
        uv_loop_close(&loop);
    if (cfg_ok) {
        agent_config_release(&cfg);
        curl_global_cleanup();
    }
    diag_list_release(&diags);
    return rc;
}
