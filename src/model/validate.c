#include "validate.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../util/uuid.h"

static bool
is_alnum_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool
nb_token_is_valid(const char *s, size_t max)
{
    if (!s || !is_alnum_ascii(s[0]))
        return false;
    size_t n = strlen(s);
    if (n > max)
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!is_alnum_ascii(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

bool
nb_name_is_valid(const char *name)
{
    /* A name shaped like a UUID would make "/v1/vms/<x>" ambiguous. */
    return nb_token_is_valid(name, NB_NAME_MAX) && !nb_uuid_is_valid(name);
}

int
nb_name_check(const char *what, const char *name, NbError **err)
{
    if (nb_name_is_valid(name))
        return 0;
    return nb_error_set(err, NB_ERR_INVALID_NAME,
                        "%s name must match [A-Za-z0-9][A-Za-z0-9._-]{0,62} and not be a UUID",
                        what);
}

bool
nb_hostname_is_valid(const char *h)
{
    if (!h)
        return false;
    size_t n = strlen(h);
    if (n == 0 || n > NB_HOSTNAME_MAX || h[0] == '-' || h[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum_ascii(h[i]) && h[i] != '-')
            return false;
    }
    return true;
}

char *
nb_hostname_from_name(const char *name)
{
    size_t n = strlen(name);
    char *h = malloc(n + 1);
    if (!h)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n && j < NB_HOSTNAME_MAX; i++) {
        char c = name[i];
        h[j++] = is_alnum_ascii(c) ? (char)tolower((unsigned char)c) : '-';
    }
    while (j > 0 && h[j - 1] == '-')
        j--;
    h[j] = '\0';
    if (!nb_hostname_is_valid(h)) {
        free(h);
        return NULL;
    }
    return h;
}
