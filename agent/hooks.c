/* hooks.c - the external commands of the autopilot handlers (see hooks.h). */
#include "hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "buf.h"
#include "child.h"
#include "log.h"

#define COMP "agent"

extern char **environ;

/* Variables passed from the agent's environment (prefix match). */
static const char *const passed_env[] = {"PATH=", "HOME=", "LANG=", "LC_", "TZ=", NULL};

/* REEVE_* variables set for the command. */
#define HOOK_VARS 11

bool hook_configured(const struct agent_config *cfg, enum agent_event ev)
{
    return ev < AGENT_EV_COUNT && cfg->handlers[ev].argv != NULL;
}

/* The child's environment: passed variables and the REEVE_* ones (strings
 * in vars, freed by the caller). */
static char **build_env(const struct agent_config *cfg, enum agent_event ev,
                        const struct hook_event *info, char vars[HOOK_VARS][RV_PG_PATH_MAX + 64])
{
    size_t n_env = 0, k = 0;
    for (char **p = environ; *p; p++)
        n_env++;
    char **envp = calloc(n_env + HOOK_VARS + 1, sizeof(*envp));
    if (envp == NULL)
        return NULL;
    n_env = 0;
    for (char **p = environ; *p; p++)
        for (size_t i = 0; passed_env[i] != NULL; i++)
            if (strncmp(*p, passed_env[i], strlen(passed_env[i])) == 0) {
                envp[n_env++] = *p;
                break;
            }
#define SETV(...) snprintf(vars[k++], sizeof(vars[0]), __VA_ARGS__)
    SETV("REEVE_EVENT=%s", agent_event_name(ev));
    SETV("REEVE_CLUSTER=%s/%s", cfg->namespace_, cfg->cluster);
    SETV("REEVE_NODE=%s", cfg->node);
    SETV("REEVE_ROLE=%s", info && info->role ? info->role : "");
    SETV("REEVE_PRIMARY=%s", info && info->primary ? info->primary : "");
    SETV("REEVE_DATA_DIR=%s", cfg->pg.data_dir);
    SETV("REEVE_PORT=%d", cfg->pg.port);
    SETV("REEVE_LISTEN_ADDRESS=%s", cfg->pg.listen_address);
    SETV("REEVE_ENGINE=postgresql");
    if (ev == AGENT_EV_ONCHANGE) {
        SETV("REEVE_OLD_ROLE=%s", info && info->old_role ? info->old_role : "");
        SETV("REEVE_NEW_ROLE=%s", info && info->new_role ? info->new_role : "");
    }
#undef SETV
    for (size_t i = 0; i < k; i++)
        envp[n_env++] = vars[i];
    envp[n_env] = NULL;
    return envp;
}

static int report(enum agent_event ev, int why, int status, int64_t timeout_ms,
                  const struct buf *out, int64_t took_ms, struct rv_error *err)
{
    char tail[600];
    const char *name = agent_event_name(ev);
    child_tail_line(tail, sizeof tail, out);
    if (why == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        log_debug(COMP, "%s handler succeeded in %lld ms%s%s", name, (long long)took_ms,
                  tail[0] ? ": " : "", tail);
        return 0;
    }
    int rc;
    if (why == RV_ETIMEOUT)
        rc =
            rv_error_set(err, RV_ETIMEOUT, true, "%s handler killed after %lld ms (timeout_ms)%s%s",
                         name, (long long)timeout_ms, tail[0] ? ": " : "", tail);
    else if (why == RV_ECANCELED)
        rc = rv_error_set(err, RV_ECANCELED, true, "%s handler killed: the step was abandoned",
                          name);
    else if (WIFSIGNALED(status))
        rc = rv_error_set(err, RV_ECHILD, true, "%s handler killed by signal %d%s%s", name,
                          WTERMSIG(status), tail[0] ? ": " : "", tail);
    else
        rc = rv_error_set(err, RV_ECHILD, true, "%s handler failed (exit %d)%s%s", name,
                          WEXITSTATUS(status), tail[0] ? ": " : "", tail);
    log_warn(COMP, "%s", err != NULL ? err->msg : name);
    return rc;
}

int hook_run(const struct agent_config *cfg, enum agent_event ev, const struct hook_event *info,
             const atomic_bool *abort, struct rv_error *err)
{
    if (!hook_configured(cfg, ev))
        return 0;
    const struct agent_handler *h = &cfg->handlers[ev];
    char(*vars)[RV_PG_PATH_MAX + 64] = calloc(HOOK_VARS, sizeof(*vars));
    char **envp = vars != NULL ? build_env(cfg, ev, info, vars) : NULL;
    struct child_result r = {0};
    char label[64];
    int rc = 0;
    int64_t t0 = child_now_ms();
    if (envp == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    snprintf(label, sizeof label, "%s handler", agent_event_name(ev));
    /* Nothing else of the agent's reaches the command (not the watchdog's
     * pipe, not sockets); whatever it leaves in its group goes with it. */
    struct child_spec s = {
        .argv = (const char *const *)h->argv, .envp = envp, .close_fds = true, .label = label};
    struct child_opts o = {.timeout_ms = (int)h->timeout_ms,
                           .cancel = abort,
                           .output_max = RV_AGENT_HANDLER_OUTPUT_MAX,
                           .kill_group_after = true};
    log_debug(COMP, "running the %s handler '%s'", agent_event_name(ev), h->argv[0]);
    rc = child_run(&r, &s, 1, &o, err);
    if (rc == 0)
        rc = report(ev, r.why, r.status[0], h->timeout_ms, &r.out, child_now_ms() - t0, err);
out:
    free(envp);
    free(vars);
    child_result_release(&r);
    return rc;
}
