/* Command-line parsing for the command groups: long options only, global options removed first. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Cli Cli;
typedef struct Args Args;

typedef struct ArgSpec {
    const char *name; /* long name without the leading "--" */
    bool has_value;
    bool repeatable; /* may be given more than once; args_get_all() has every value */
} ArgSpec;

#define ARGS_MAX_SPECS 16
#define ARGS_MAX_POSITIONAL 4
#define ARGS_MAX_REPEATED 32 /* values of repeatable options, all of them together */

typedef struct Command {
    const char *name;
    const char *usage;   /* what follows "nimbus GROUP NAME" in the usage line */
    const char *summary; /* one line, for the group's help */
    const char *help;    /* option descriptions, may be NULL */
    int (*run)(Cli *cli, const Args *args);
    const ArgSpec *specs;
    size_t n_specs;
    size_t min_positional;
    size_t max_positional;
    const char *data; /* free for the command's use (e.g. the action of a VM) */
} Command;

struct Args {
    const Command *cmd;
    const char *group;                  /* NULL for a command of its own */
    const char *values[ARGS_MAX_SPECS]; /* the option's value, "" for a flag, NULL when absent */
    const char *positional[ARGS_MAX_POSITIONAL];
    size_t n_positional;
    bool help;
    /* Every value of the repeatable options, in command-line order, with its spec's index. */
    const char *repeated[ARGS_MAX_REPEATED];
    size_t repeated_spec[ARGS_MAX_REPEATED];
    size_t n_repeated;
};

/* The value of option `name` (which must be in the command's specs), or NULL. */
const char *args_get(const Args *a, const char *name);
bool args_has(const Args *a, const char *name);
/* The values of repeatable option `name`, in command-line order, into ret (at most max of
 * them); returns how many were given. args_get() has the last one. */
size_t args_get_all(const Args *a, const char *name, const char **ret, size_t max);

/* Prints "error: ..." and the command's usage line to stderr; returns CLI_EXIT_USAGE. */
int args_usage_error(const Args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Runs the sub-command argv[0] of `group` (argv does not include the group's name). Prints the
 * group's help for -h/--help, and a usage error for a missing or unknown sub-command.
 */
int args_dispatch(Cli *cli, const char *group, const char *summary, const Command *cmds,
                  size_t n_cmds, int argc, char **argv);

/* Runs a command that is not in a group (nimbus login ...): argv holds its arguments only. */
int args_run(Cli *cli, const Command *cmd, int argc, char **argv);

/* Parses option `name`, when given, as a decimal in [min, max] into *ret (left alone when the
 * option is absent). 0, or CLI_EXIT_USAGE after printing why. */
int args_get_u64(const Args *a, const char *name, uint64_t min, uint64_t max, uint64_t *ret);

/* "30d", "12h", "90m", "3600s" or "3600" as seconds. 0, -EINVAL or -ERANGE. */
int args_parse_duration(const char *s, uint64_t *ret);
