/* String tables for enums that end in _MAX (systemd's string-table idiom). */
#pragma once

#include <string.h>

#define DEFINE_STRING_TABLE(prefix, type, table)                                                   \
    const char *prefix##_to_string(type v)                                                         \
    {                                                                                              \
        if ((int)v < 0 || (size_t)v >= sizeof(table) / sizeof(table[0]))                           \
            return NULL;                                                                           \
        return table[v];                                                                           \
    }                                                                                              \
    type prefix##_from_string(const char *s)                                                       \
    {                                                                                              \
        if (!s)                                                                                    \
            return (type)-1;                                                                       \
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)                              \
            if (table[i] && strcmp(table[i], s) == 0)                                              \
                return (type)i;                                                                    \
        return (type)-1;                                                                           \
    }
