#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "cli.h"

#define CONFIG_FILE_MAX (64 * 1024)

void
config_clear(CliConfig *c)
{
    free(c->url);
    if (c->token)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    free(c->cacert);
    free(c->path);
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
        char **field = streq(key, "url")      ? &c->url
                       : streq(key, "token")  ? &c->token
                       : streq(key, "cacert") ? &c->cacert
                                              : NULL;
        if (!field) {
            fprintf(stderr, "warning: %s:%u: unknown key '%s'\n", path, lineno, key);
            continue;
        }
        if (*field || *value == '\0')
            continue;
        *field = strdup(value);
        if (!*field)
            return -ENOMEM;
        if (field == &c->token)
            c->token_source = CONFIG_SOURCE_FILE;
    }
    explicit_bzero(text, strlen(text) + 1); /* it may hold a token */
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

/* must_read: a file that exists but cannot be read is an error (else it is skipped: only the CA
 * file was still wanted from it). */
static int
config_read_first_file(CliConfig *c, bool must_read)
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
        if (r < 0 && !must_read)
            return 0;
        if (r < 0) {
            fprintf(stderr, "error: cannot read config file %s: %s\n", path, strerror(-r));
            return CLI_EXIT_USAGE;
        }
        c->path = strdup(path);
        return c->path ? 0 : CLI_EXIT_API;
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
config_load(const char *url_opt, const char *token_opt, const char *cacert_opt, CliConfig *ret)
{
    CliConfig c = {0};
    if (config_set(&c.url, url_opt) < 0 || config_set(&c.token, token_opt) < 0 ||
        config_set(&c.cacert, cacert_opt) < 0)
        goto oom;
    if (c.token)
        c.token_source = CONFIG_SOURCE_OPTION;
    if (config_set(&c.url, getenv("NIMBUS_URL")) < 0 ||
        config_set(&c.token, getenv("NIMBUS_TOKEN")) < 0 ||
        config_set(&c.cacert, getenv("NIMBUS_CACERT")) < 0)
        goto oom;
    if (c.token && c.token_source == CONFIG_SOURCE_NONE)
        c.token_source = CONFIG_SOURCE_ENV;
    if (!c.url || !c.token || !c.cacert) {
        int r = config_read_first_file(&c, !c.url || !c.token);
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
    if (c.cacert && access(c.cacert, R_OK) < 0) {
        fprintf(stderr, "error: cannot read the CA file %s: %s\n", c.cacert, strerror(errno));
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

int
config_user_path(char **ret)
{
    const char *env = getenv("NIMBUS_CONFIG");
    const char *home = getenv("HOME");
    char *p = NULL;
    if (env && *env)
        p = strdup(env);
    else if (home && *home)
        p = str_printf("%s/.config/nimbus/config", home);
    else
        return -ENOENT;
    if (!p)
        return -ENOMEM;
    *ret = p;
    return 0;
}

/* mkdir -p of the directory part of path, each new directory 0700. 0 or -errno. */
static int
config_make_parents(const char *path)
{
    _cleanup_free_ char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The key of a `key = value` line, in buf; NULL for blank, comment or malformed lines. */
static const char *
config_line_key(const char *line, size_t len, char *buf, size_t buf_size)
{
    if (len >= buf_size)
        len = buf_size - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    char *eq = strchr(buf, '=');
    if (!eq)
        return NULL;
    *eq = '\0';
    char *key = config_strip(buf);
    return *key == '\0' || *key == '#' ? NULL : key;
}

static int
config_find_key(const char *key, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (streq(key, keys[i]))
            return (int)i;
    }
    return -1;
}

static int
config_put(FILE *f, const char *key, const char *value)
{
    return fprintf(f, "%s = %s\n", key, value) < 0 ? -EIO : 0;
}

int
config_update_file(const char *path, const char *const *keys, const char *const *values, size_t n)
{
    _cleanup_free_ char *old = NULL;
    size_t old_len = 0;
    bool written[16] = {false};
    if (n > ELEMENTSOF(written))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (values[i] && (strchr(values[i], '\n') || config_has_control_chars(values[i])))
            return -EINVAL;
    }
    int r = read_file_full(path, CONFIG_FILE_MAX, &old, &old_len);
    if (r < 0 && r != -ENOENT)
        return r;
    /* A symbolic link (dotfiles kept elsewhere) is followed: its target is rewritten. */
    _cleanup_free_ char *real = old ? realpath(path, NULL) : NULL;
    const char *target = real ? real : path;
    if (!old) {
        r = config_make_parents(target);
        if (r < 0)
            return r;
    }
    _cleanup_free_ char *tmp = str_printf("%s.XXXXXX", target);
    if (!tmp)
        return -ENOMEM;
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        r = -errno;
        close(fd);
        unlink(tmp);
        goto out;
    }
    r = 0;
    for (const char *line = old; r == 0 && line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char keybuf[128];
        const char *key = config_line_key(line, len, keybuf, sizeof(keybuf));
        int i = key ? config_find_key(key, keys, n) : -1;
        if (i < 0) {
            if (fwrite(line, 1, len, f) != len || fputc('\n', f) == EOF)
                r = -EIO;
        } else if (values[i] && !written[i]) {
            r = config_put(f, keys[i], values[i]);
            written[i] = true;
        }
        line = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (values[i] && !written[i])
            r = config_put(f, keys[i], values[i]);
    }
    if (r == 0 && (fflush(f) != 0 || fsync(fileno(f)) < 0))
        r = -errno;
    if (fclose(f) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, target) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
out:
    if (old)
        explicit_bzero(old, old_len);
    return r;
}
