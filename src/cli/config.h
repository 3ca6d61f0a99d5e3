/*
 * Where the CLI finds the API, its token and the CAs to trust. Each setting comes from the first
 * source that has it: the --url/--token/--cacert options, then $NIMBUS_URL/$NIMBUS_TOKEN/
 * $NIMBUS_CACERT, then the config file, which is the first that exists of $NIMBUS_CONFIG,
 * ~/.config/nimbus/config and /etc/nimbus/cli.conf.
 */
#pragma once

#include <stddef.h>

typedef enum ConfigSource {
    CONFIG_SOURCE_NONE,
    CONFIG_SOURCE_OPTION,
    CONFIG_SOURCE_ENV,
    CONFIG_SOURCE_FILE,
} ConfigSource;

typedef struct CliConfig {
    char *url;    /* never NULL after config_load: defaults to CLI_DEFAULT_URL */
    char *token;  /* NULL when no source has one */
    char *cacert; /* NULL: the system's CAs */
    char *path;   /* the config file that was read, or NULL */
    ConfigSource token_source;
} CliConfig;

/* Returns 0, or CLI_EXIT_USAGE after printing why the settings are unusable. */
int config_load(const char *url_opt, const char *token_opt, const char *cacert_opt, CliConfig *ret);
/* Reads `key = value` lines from path into the fields of c that are still NULL. 0 or -errno. */
int config_parse_file(const char *path, CliConfig *c);
/* Frees the fields; the token is zeroed first. */
void config_clear(CliConfig *c);

/* The file `nimbus login` writes: $NIMBUS_CONFIG, else ~/.config/nimbus/config. 0 or -errno. */
int config_user_path(char **ret);

/*
 * Rewrites the config file at path: for each keys[i], values[i] replaces the first `key = ...`
 * line (others of that key are dropped; the line is appended when there is none), or, when
 * values[i] is NULL, every line of that key is removed. Other lines stay as they are. The file
 * is replaced atomically with mode 0600; missing directories are created with mode 0700.
 * 0 or -errno.
 */
int config_update_file(const char *path, const char *const *keys, const char *const *values,
                       size_t n);
