/*
 * Where the CLI finds the API and its token. Each setting comes from the first source that has
 * it: the --url/--token options, then $NIMBUS_URL/$NIMBUS_TOKEN, then the config file, which is
 * the first that exists of $NIMBUS_CONFIG, ~/.config/nimbus/config and /etc/nimbus/cli.conf.
 */
#pragma once

typedef struct CliConfig {
    char *url;   /* never NULL after config_load: defaults to CLI_DEFAULT_URL */
    char *token; /* NULL when no source has one */
} CliConfig;

/* Returns 0, or CLI_EXIT_USAGE after printing why the settings are unusable. */
int config_load(const char *url_opt, const char *token_opt, CliConfig *ret);
/* Reads `key = value` lines from path into the fields of c that are still NULL. 0 or -errno. */
int config_parse_file(const char *path, CliConfig *c);
void config_clear(CliConfig *c);
