/* cli.h - the `reeve` subcommands. Each returns the process exit code;
 * only main() exits. */
#ifndef REEVE_CLI_H
#define REEVE_CLI_H

struct cli_command {
    const char *name;
    const char *summary; /* one line for `reeve --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

int cmd_validate(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_backups(int argc, char **argv);
int cmd_seal(int argc, char **argv);

#endif
