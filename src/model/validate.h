/* Validation of user-supplied strings before they reach the store, libvirt or a file. */
#pragma once

#include <stdbool.h>

#include "../util/error.h"

#define NB_NAME_MAX 63
#define NB_HOSTNAME_MAX 63
#define NB_USER_DATA_MAX (64 * 1024)
#define NB_MAC_STRLEN 18 /* "52:54:00:xx:xx:xx" + NUL */

/* [A-Za-z0-9][A-Za-z0-9._-]{0,max-1}: the shape of names, and of what goes into host names
 * (interfaces, libvirt objects) unescaped. */
bool nb_token_is_valid(const char *s, size_t max);
/* Resource names: [A-Za-z0-9][A-Za-z0-9._-]{0,62}, and not a UUID (ids and names share URLs). */
bool nb_name_is_valid(const char *name);
int nb_name_check(const char *what, const char *name, NbError **err);
/* RFC 1123 label: [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?, case-insensitive. */
bool nb_hostname_is_valid(const char *hostname);
/* Derives a hostname from a valid resource name ('.' and '_' become '-', lower case, trimmed).
 * Returns NULL on allocation failure or when nothing valid remains. */
char *nb_hostname_from_name(const char *name);
