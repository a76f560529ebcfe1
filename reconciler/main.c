/* main.c - `reeve`: the command-line entry point. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
    {"validate", "check specs and policies; exit 0 valid, 1 invalid, 2 usage or I/O error",
     cmd_validate},
    {"plan", "show the actions that would make the fleet match the specs; exit 0/1/2", cmd_plan},
    {"serve", "run the GitOps loop: webhooks, statuses on pull requests, plan pages",
     cmd_serve},
    {"status", "show what a running reeve sees: nodes, lag, apply outcome, pending actions",
     cmd_status},
    {"backups", "list the backups reeve knows of, or verify one against its destination",
     cmd_backups},
    {"seal", "encrypt a secret for a spec with the reconciler's public key", cmd_seal},
};

static void usage(FILE *out)
{
    fputs("usage: reeve <command> [options]\n"
          "\n"
          "reeve is a GitOps control plane for self-hosted PostgreSQL and MariaDB:\n"
          "cluster specs live in a Git repository, pull requests get validated and\n"
          "planned, merges get applied.\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Run 'reeve <command> --help' for a command's options and examples.\n",
          out);
}

int main(int argc, char **argv)
{
    /* A peer that hangs up must cost one failed write, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("reeve %s\n", REEVE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "error: unknown command '%s'; run 'reeve --help' for the list\n", name);
    return 2;
}
