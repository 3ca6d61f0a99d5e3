#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "cli.h"

static int
args_find(const Command *cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < cmd->n_specs; i++) {
        if (strlen(cmd->specs[i].name) == len && strncmp(cmd->specs[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

const char *
args_get(const Args *a, const char *name)
{
    int i = args_find(a->cmd, name, strlen(name));
    return i < 0 ? NULL : a->values[i];
}

bool
args_has(const Args *a, const char *name)
{
    return args_get(a, name) != NULL;
}

size_t
args_get_all(const Args *a, const char *name, const char **ret, size_t max)
{
    int idx = args_find(a->cmd, name, strlen(name));
    size_t n = 0;
    for (size_t i = 0; idx >= 0 && i < a->n_repeated; i++) {
        if (a->repeated_spec[i] != (size_t)idx)
            continue;
        if (n < max)
            ret[n] = a->repeated[i];
        n++;
    }
    return n;
}

/* group is NULL for a command of its own (nimbus login). */
static void
args_print_usage(FILE *f, const char *group, const Command *cmd)
{
    fprintf(f, "usage: nimbus %s%s%s%s%s\n", group ? group : "", group ? " " : "", cmd->name,
            cmd->usage[0] ? " " : "", cmd->usage);
}

int
args_usage_error(const Args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    args_print_usage(stderr, a->group, a->cmd);
    fprintf(stderr, "Try 'nimbus %s%s%s --help'.\n", a->group ? a->group : "", a->group ? " " : "",
            a->cmd->name);
    return CLI_EXIT_USAGE;
}

static int
args_parse(const char *group, const Command *cmd, int argc, char **argv, Args *ret)
{
    *ret = (Args){.cmd = cmd, .group = group};
    bool only_positional = false;

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_positional && streq(arg, "--")) {
            only_positional = true;
            continue;
        }
        if (!only_positional && (streq(arg, "-h") || streq(arg, "--help"))) {
            ret->help = true;
            continue;
        }
        if (!only_positional && arg[0] == '-' && arg[1] != '\0') {
            if (arg[1] != '-')
                return args_usage_error(ret, "unknown option '%s'", arg);
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int idx = args_find(cmd, name, len);
            if (idx < 0)
                return args_usage_error(ret, "unknown option '--%.*s'", (int)len, name);
            if (cmd->specs[idx].has_value) {
                if (eq)
                    ret->values[idx] = eq + 1;
                else if (i + 1 < argc)
                    ret->values[idx] = argv[++i];
                else
                    return args_usage_error(ret, "option '--%s' needs a value",
                                            cmd->specs[idx].name);
            } else {
                if (eq)
                    return args_usage_error(ret, "option '--%s' takes no value",
                                            cmd->specs[idx].name);
                ret->values[idx] = "";
            }
            if (cmd->specs[idx].repeatable) {
                if (ret->n_repeated >= ARGS_MAX_REPEATED)
                    return args_usage_error(ret, "too many --%s options (at most %d)",
                                            cmd->specs[idx].name, ARGS_MAX_REPEATED);
                ret->repeated[ret->n_repeated] = ret->values[idx];
                ret->repeated_spec[ret->n_repeated++] = (size_t)idx;
            }
            continue;
        }
        if (ret->n_positional >= cmd->max_positional || ret->n_positional >= ARGS_MAX_POSITIONAL)
            return args_usage_error(ret, "unexpected argument '%s'", arg);
        ret->positional[ret->n_positional++] = arg;
    }
    if (!ret->help && ret->n_positional < cmd->min_positional)
        return args_usage_error(ret, "missing argument");
    return 0;
}

static void
args_print_group_help(FILE *f, const char *group, const char *summary, const Command *cmds,
                      size_t n_cmds)
{
    fprintf(f, "usage: nimbus [GLOBAL OPTIONS] %s COMMAND [ARGS]\n\n%s\n\nCommands:\n", group,
            summary);
    for (size_t i = 0; i < n_cmds; i++)
        fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\nRun 'nimbus %s COMMAND --help' for a command's options.\n", group);
}

static int
args_run_group(Cli *cli, const char *group, const Command *cmd, int argc, char **argv)
{
    Args args;
    int r = args_parse(group, cmd, argc, argv, &args);
    if (r != 0)
        return r;
    if (args.help) {
        args_print_usage(stdout, group, cmd);
        printf("\n%s\n", cmd->summary);
        if (cmd->help)
            printf("\nOptions:\n%s", cmd->help);
        printf("\nGlobal options: --json, --url URL, --token TOKEN, --cacert FILE (see 'nimbus "
               "--help').\n");
        return CLI_EXIT_OK;
    }
    return cmd->run(cli, &args);
}

int
args_run(Cli *cli, const Command *cmd, int argc, char **argv)
{
    return args_run_group(cli, NULL, cmd, argc, argv);
}

int
args_dispatch(Cli *cli, const char *group, const char *summary, const Command *cmds, size_t n_cmds,
              int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "error: missing command\n");
        args_print_group_help(stderr, group, summary, cmds, n_cmds);
        return CLI_EXIT_USAGE;
    }
    if (streq(argv[0], "-h") || streq(argv[0], "--help") || streq(argv[0], "help")) {
        args_print_group_help(stdout, group, summary, cmds, n_cmds);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < n_cmds; i++) {
        if (streq(argv[0], cmds[i].name))
            return args_run_group(cli, group, &cmds[i], argc - 1, argv + 1);
    }
    fprintf(stderr, "error: unknown command '%s %s'\n", group, argv[0]);
    args_print_group_help(stderr, group, summary, cmds, n_cmds);
    return CLI_EXIT_USAGE;
}

int
args_get_u64(const Args *a, const char *name, uint64_t min, uint64_t max, uint64_t *ret)
{
    const char *v = args_get(a, name);
    if (!v)
        return 0;
    uint64_t n;
    if (str_to_u64(v, &n) < 0 || n < min || n > max)
        return args_usage_error(a, "--%s must be a whole number from %" PRIu64 " to %" PRIu64, name,
                                min, max);
    *ret = n;
    return 0;
}

int
args_parse_duration(const char *s, uint64_t *ret)
{
    static const struct {
        char suffix;
        uint64_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    size_t len = s ? strlen(s) : 0;
    uint64_t mult = 1, n;
    char digits[24];
    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < ELEMENTSOF(units); i++) {
        if (s[len - 1] == units[i].suffix) {
            mult = units[i].seconds;
            len--;
            break;
        }
    }
    if (len == 0 || len >= sizeof(digits))
        return -EINVAL;
    memcpy(digits, s, len);
    digits[len] = '\0';
    int r = str_to_u64(digits, &n);
    if (r < 0)
        return r;
    if (n > UINT64_MAX / mult)
        return -ERANGE;
    *ret = n * mult;
    return 0;
}
