#pragma once

#include <stdbool.h>

#define NB_UUID_STRLEN 37 /* 36 characters and the NUL */

/* A random (version 4) UUID in canonical lower-case form. 0 or -errno. */
int nb_uuid_generate(char out[NB_UUID_STRLEN]);
bool nb_uuid_is_valid(const char *s);
