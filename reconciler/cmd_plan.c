/* cmd_plan.c - `reeve plan`: show the actions that would take the observed
 * state to the desired state, without changing anything.
 *
 * Contract: the plan goes to stdout (text, or one JSON object with --json);
 * diagnostics and errors go to stderr. Exit status follows Terraform's
 * -detailed-exitcode: 0 no changes, 1 error (invalid specs included),
 * 2 changes (or blocked actions).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <jansson.h>

#include "buf.h"
#include "cli.h"
#include "diag.h"
#include "err.h"
#include "limits.h"
#include "observed.h"
#include "planner.h"
#include "source.h"
#include "spec.h"

enum { EXIT_NO_CHANGES = 0, EXIT_ERROR = 1, EXIT_CHANGES = 2 };

static const char plan_usage[] =
    "usage: reeve plan [--repo PATH] [--base REF] [--head REF] [--observed FILE]\n"
    "                  [--now TIME] [--json]\n";

static const char plan_help[] =
    "\n"
    "Show what reeve would do to make the running fleet match the specs: an\n"
    "ordered list of actions (provision instances, bootstrap a primary, add or\n"
    "remove replicas, rolling upgrades and resizes, parameters, users, backups,\n"
    "deletion), each with why it is needed, what it waits for, and what blocks\n"
    "it. Nothing is changed; plan only reads.\n"
    "\n"
    "desired state (the specs):\n"
    "  --repo PATH      the spec repository or folder (default: .). Without\n"
    "                   --base/--head the files are read as they are on disk.\n"
    "  --head REF       read the specs at REF of the Git repository at PATH\n"
    "                   (branch, tag or SHA; default HEAD when --base is given)\n"
    "  --base REF       also read the specs at the merge base of REF and --head,\n"
    "                   as a pull request compares: see what merging would do\n"
    "\n"
    "observed state (what runs):\n"
    "  --observed FILE  observed state as JSON; '-' reads stdin. A running reeve\n"
    "                   builds it from agent reports and provider inventories;\n"
    "                   docs/planning.md and examples/observed/ show the shape.\n"
    "  without it       with --base: the fleet is taken to be exactly what the\n"
    "                   specs at base describe, so the plan shows only what the\n"
    "                   change does; without --base: nothing is taken to run,\n"
    "                   so the plan creates everything.\n"
    "  --now TIME       judge the age of node reports at this RFC 3339 time\n"
    "                   (default: the clock), for plans that can be reproduced\n"
    "\n"
    "output:\n"
    "  (default)        per cluster, one line per action in execution order:\n"
    "                     + add   ~ change   - destroy   = no change (a step)\n"
    "                   with 'after:', 'waits for:' and '! blocked:' lines, and\n"
    "                   a last line 'Plan: N to add, N to change, N to destroy.'\n"
    "  --json           {\"base\", \"head\", \"observed_revision\", \"summary\":\n"
    "                   {\"add\", \"change\", \"destroy\", \"blocked\"}, \"actions\": [{\"id\",\n"
    "                   \"kind\", \"cluster\", \"node\", \"depends_on\", \"reason\",\n"
    "                   \"waits_for\", \"blocked\", \"idempotency_key\", \"change\"}]}\n"
    "  -h, --help       show this help\n"
    "\n"
    "exit status (Terraform's -detailed-exitcode):\n"
    "  0  no changes: the observed state matches the specs\n"
    "  1  error: invalid specs (diagnostics on stderr), unreadable input, bad usage\n"
    "  2  changes to make, or actions blocked until someone acts\n"
    "\n"
    "examples:\n"
    "  reeve plan --repo examples/quickstart\n"
    "      everything a new fleet needs\n"
    "  reeve plan --repo . --base main --head my-change\n"
    "      what merging branch my-change into main would do\n"
    "  reeve plan --observed observed.json --json | jq '.actions[] | select(.blocked)'\n"
    "      what is blocked, and why\n"
    "  reeve plan --repo . --base origin/main --head HEAD; test $? -ne 1\n"
    "      in CI: fail on errors, not on changes\n"
    "\n"
    "See docs/planning.md for the action kinds, their order and the observed JSON.\n";

struct options {
    const char *repo;
    const char *base;
    const char *head;
    const char *observed;
    const char *now;
    bool json;
};

/* "--name VALUE" or "--name=VALUE"; returns 1 when a matched, -1 on a
 * missing value, 0 when a is another option. */
static int opt_value(const char *a, const char *name, int *i, int argc, char **argv,
                     const char **out)
{
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *out = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "error: option '%s' needs a value\n%s", name, plan_usage);
        return -1;
    }
    *out = argv[++*i];
    return 1;
}

static int parse_args(struct options *o, int argc, char **argv)
{
    static const char *const names[] = {"--repo", "--base", "--head", "--observed", "--now"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slots[] = {&o->repo, &o->base, &o->head, &o->observed, &o->now};
        int matched = 0;
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && !matched; k++) {
            matched = opt_value(a, names[k], &i, argc, argv, slots[k]);
            if (matched < 0)
                return EXIT_ERROR;
        }
        if (matched)
            continue;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(plan_usage, stdout);
            fputs(plan_help, stdout);
            return EXIT_NO_CHANGES;
        } else {
            fprintf(stderr,
                    "error: %s '%s'\n%s"
                    "run 'reeve plan --help' for the options\n",
                    a[0] == '-' ? "unknown option" : "unexpected argument", a, plan_usage);
            return EXIT_ERROR;
        }
    }
    if (o->repo == NULL)
        o->repo = ".";
    if (o->base && o->head == NULL)
        o->head = "HEAD";
    return -1;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory libgit2 opens as a repository: PATH/.git, or PATH itself
 * when it is a bare repository. */
static int find_git_dir(struct buf *out, const char *repo, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    int rc = 0;
    if (buf_printf(&b, "%s/.git", repo) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (is_dir(b.data)) {
        rc = buf_puts(out, b.data);
        goto out;
    }
    buf_clear(&b);
    if (buf_printf(&b, "%s/objects", repo) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (is_dir(b.data)) {
        rc = buf_puts(out, repo);
        goto out;
    }
    rc = rv_error_set(err, RV_EINVAL, false,
                      "'%s' is not a git repository (no .git folder); --base and --head read "
                      "commits, so point --repo at a clone, or drop them to plan the files on "
                      "disk",
                      repo);
out:
    buf_release(&b);
    return rc;
}

/* source_resolve, with a message about the user's repository rather than
 * a mirror (plan reads the repository in place and never fetches). */
static int resolve(struct source *src, const char *repo, const char *rev, git_oid *out,
                   struct rv_error *err)
{
    int rc = source_resolve(src, rev, out, err);
    if (rc == RV_ENOTFOUND)
        rv_error_set(err, rc, false,
                     "revision '%s' not found in the git repository at '%s'; check the branch, "
                     "tag or commit (remote branches are named like origin/main)",
                     rev, repo);
    return rc;
}

struct git_specs {
    struct source *src;
    char head_sha[GIT_OID_HEXSZ + 1];
    char base_sha[GIT_OID_HEXSZ + 1];
    bool global;
};

/* Load desired@head (and previous@merge-base(base, head)) from the
 * repository at o->repo. The repository is only read: its object database
 * is opened in place, nothing is fetched or written. */
static int load_git(struct git_specs *g, const struct options *o, struct spec_set *desired,
                    struct spec_set *previous, struct diag_list *diags,
                    struct diag_list *base_diags, struct rv_error *err)
{
    struct source_config cfg;
    struct buf gitdir = BUF_INIT;
    git_oid head, base, mb;
    int rc;

    rc = find_git_dir(&gitdir, o->repo, err);
    if (rc)
        goto out;
    rc = source_global_init(0, err);
    if (rc)
        goto out;
    g->global = true;
    source_config_init(&cfg);
    cfg.url = o->repo;
    cfg.mirror_dir = gitdir.data;
    rc = source_open(&g->src, &cfg, err);
    if (rc)
        goto out;
    rc = resolve(g->src, o->repo, o->head, &head, err);
    if (rc)
        goto out;
    git_oid_tostr(g->head_sha, sizeof(g->head_sha), &head);
    rc = source_load_specs(g->src, &head, desired, diags, err);
    if (rc || o->base == NULL)
        goto out;
    rc = resolve(g->src, o->repo, o->base, &base, err);
    if (rc)
        goto out;
    rc = source_merge_base(g->src, &base, &head, &mb, err);
    if (rc == RV_ENOTFOUND) {
        rv_error_set(err, RV_ENOTFOUND, false,
                     "'%s' and '%s' share no history; --base must be a commit the head "
                     "branch was started from",
                     o->base, o->head);
        goto out;
    }
    if (rc)
        goto out;
    git_oid_tostr(g->base_sha, sizeof(g->base_sha), &mb);
    rc = source_load_specs(g->src, &mb, previous, base_diags, err);
out:
    buf_release(&gitdir);
    return rc;
}

static int read_stdin(struct buf *out, struct rv_error *err)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (out->len + n > RV_OBSERVED_FILE_MAX)
            return rv_error_set(err, RV_ELIMIT, false,
                                "<stdin>: observed state is larger than %d bytes",
                                RV_OBSERVED_FILE_MAX);
        if (buf_append(out, chunk, n) != 0)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    if (ferror(stdin))
        return rv_error_set(err, RV_EIO, false, "cannot read observed state from stdin: %s",
                            strerror(errno));
    return 0;
}

static void print_error(int rc, const struct rv_error *err)
{
    fprintf(stderr, "error: %s\n", err->msg[0] ? err->msg : rv_strerror(rc));
}

static bool use_color(void)
{
    const char *term = getenv("TERM");
    return isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL && term && strcmp(term, "dumb");
}

int cmd_plan(int argc, char **argv)
{
    struct options o = {0};
    struct spec_set desired, previous;
    struct diag_list diags, base_diags;
    struct observed obs;
    struct plan plan;
    struct git_specs g = {0};
    struct rv_error err = {0};
    struct buf in = BUF_INIT;
    json_t *j = NULL;
    char *text = NULL;
    int64_t now = (int64_t)time(NULL);
    int rc, status = EXIT_ERROR;

    spec_set_init(&desired);
    spec_set_init(&previous);
    diag_list_init(&diags);
    diag_list_init(&base_diags);
    observed_init(&obs);
    plan_init(&plan);

    status = parse_args(&o, argc, argv);
    if (status >= 0)
        goto out;
    status = EXIT_ERROR;
    if (o.now && observed_time_parse(&now, o.now) != 0) {
        fprintf(stderr,
                "error: --now '%s' is not an RFC 3339 time; write it like "
                "2026-11-21T05:00:00Z\n",
                o.now);
        goto out;
    }

    /* desired state */
    if (o.head) {
        rc = load_git(&g, &o, &desired, &previous, &diags, &base_diags, &err);
    } else {
        rc = spec_set_load_dir(&desired, o.repo, &diags, &err);
    }
    if (rc) {
        print_error(rc, &err);
        goto out;
    }
    spec_set_check(&desired, &diags);
    diag_list_sort(&diags);
    diag_list_print(stderr, &diags);
    if (diags.errors) {
        fprintf(stderr,
                "error: the specs%s%s have %zu error%s; fix them (reeve validate shows the "
                "same) and plan again\n",
                o.head ? " at " : "", o.head ? o.head : "", diags.errors,
                diags.errors == 1 ? "" : "s");
        goto out;
    }
    if (base_diags.errors)
        fprintf(stderr,
                "warning: the specs at base '%s' have %zu error%s; clusters whose files do not "
                "load there are compared as if new\n",
                o.base, base_diags.errors, base_diags.errors == 1 ? "" : "s");

    /* observed state */
    if (o.observed && strcmp(o.observed, "-") == 0) {
        rc = read_stdin(&in, &err);
        if (rc == 0)
            rc = observed_load_json(&obs, "<stdin>", in.data ? in.data : "", in.len, &err);
    } else if (o.observed) {
        rc = observed_load_file(&obs, o.observed, &err);
    } else if (o.base) {
        rc = plan_assume_applied(&obs, &previous, now, &err);
        if (rc == 0 && buf_printf(&in, "as-specified@%s", g.base_sha) == 0)
            obs.revision = buf_detach(&in);
    } else {
        obs.revision = strdup("none");
        rc = obs.revision ? 0 : rv_error_set(&err, RV_ENOMEM, false, "out of memory");
    }
    if (rc) {
        print_error(rc, &err);
        goto out;
    }
    const char *revision = observed_revision(&obs);
    if (revision == NULL) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }

    struct plan_opts opts = {
        .base = o.base ? g.base_sha : NULL,
        .head = o.head ? g.head_sha : NULL,
        .observed_revision = revision,
        .now = now,
        .previous = o.base ? &previous : NULL,
    };
    rc = plan_build(&plan, &desired, &obs, &opts, &err);
    if (rc) {
        fprintf(stderr, "error: cannot plan: %s\n", err.msg);
        goto out;
    }

    if (o.json) {
        j = plan_to_json(&plan);
        text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text == NULL) {
            fputs("error: out of memory\n", stderr);
            goto out;
        }
        fputs(text, stdout);
        fputc('\n', stdout);
    } else {
        plan_print_text(stdout, &plan, use_color());
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "error: cannot write the plan: %s\n", strerror(errno));
        goto out;
    }
    status = plan_has_changes(&plan) ? EXIT_CHANGES : EXIT_NO_CHANGES;
out:
    free(text);
    json_decref(j);
    buf_release(&in);
    plan_release(&plan);
    observed_release(&obs);
    diag_list_release(&base_diags);
    diag_list_release(&diags);
    spec_set_release(&previous);
    spec_set_release(&desired);
    source_free(g.src);
    if (g.global)
        source_global_shutdown();
    return status;
}
