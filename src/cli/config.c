#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "cli.h"

#define CONFIG_FILE_MAX (64 * 1024)

void
config_clear(CliConfig *c)
{
    free(c->url);
    free(c->token);
    *c = (CliConfig){0};
}

static char *
config_strip(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    /* Allow value = "quoted" for people who quote by habit. */
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '\'' && s[n - 1] == '\''))) {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

int
config_parse_file(const char *path, CliConfig *c)
{
    _cleanup_free_ char *text = NULL;
    int r = read_file_full(path, CONFIG_FILE_MAX, &text, NULL);
    if (r < 0)
        return r;

    unsigned lineno = 0;
    char *next = text;
    while (next) {
        char *line = next;
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        next = nl ? nl + 1 : NULL;
        lineno++;
        char *s = config_strip(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "warning: %s:%u: expected 'key = value'\n", path, lineno);
            continue;
        }
        *eq = '\0';
        char *key = config_strip(s);
        char *value = config_strip(eq + 1);
        char **field = streq(key, "url") ? &c->url : streq(key, "token") ? &c->token : NULL;
        if (!field) {
            fprintf(stderr, "warning: %s:%u: unknown key '%s'\n", path, lineno, key);
            continue;
        }
        if (*field || *value == '\0')
            continue;
        *field = strdup(value);
        if (!*field)
            return -ENOMEM;
    }
    return 0;
}

static int
config_set(char **field, const char *value)
{
    if (*field || !value || !*value)
        return 0;
    *field = strdup(value);
    return *field ? 0 : -ENOMEM;
}

static int
config_read_first_file(CliConfig *c)
{
    _cleanup_free_ char *home_path = NULL;
    const char *home = getenv("HOME");
    if (home && *home)
        home_path = str_printf("%s/.config/nimbus/config", home);
    const char *candidates[] = {getenv("NIMBUS_CONFIG"), home_path, "/etc/nimbus/cli.conf"};

    for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
        const char *path = candidates[i];
        if (!path || !*path || access(path, F_OK) < 0)
            continue;
        int r = config_parse_file(path, c);
        if (r < 0) {
            fprintf(stderr, "error: cannot read config file %s: %s\n", path, strerror(-r));
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    return 0;
}

static bool
config_has_control_chars(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

int
config_load(const char *url_opt, const char *token_opt, CliConfig *ret)
{
    CliConfig c = {0};
    if (config_set(&c.url, url_opt) < 0 || config_set(&c.token, token_opt) < 0 ||
        config_set(&c.url, getenv("NIMBUS_URL")) < 0 ||
        config_set(&c.token, getenv("NIMBUS_TOKEN")) < 0)
        goto oom;
    if (!c.url || !c.token) {
        int r = config_read_first_file(&c);
        if (r != 0) {
            config_clear(&c);
            return r;
        }
    }
    if (config_set(&c.url, CLI_DEFAULT_URL) < 0)
        goto oom;

    if (!str_startswith(c.url, "http://") && !str_startswith(c.url, "https://")) {
        fprintf(stderr, "error: the URL must start with http:// or https://\n");
        config_clear(&c);
        return CLI_EXIT_USAGE;
    }
    /* A newline in the token would let it add headers to every request. */
    if (config_has_control_chars(c.url) || (c.token && config_has_control_chars(c.token))) {
        fprintf(stderr, "error: the URL or token contains control characters\n");
        config_clear(&c);
        return CLI_EXIT_USAGE;
    }
    /* Paths are appended to the base URL: one slash between them. */
    size_t n = strlen(c.url);
    while (n > 0 && c.url[n - 1] == '/')
        c.url[--n] = '\0';
    *ret = c;
    return 0;

oom:
    config_clear(&c);
    fprintf(stderr, "error: out of memory\n");
    return CLI_EXIT_API;
}
