/*
 * The error object that can reach a client: a stable code (see error_codes.h) and a message.
 * Low-level helpers return 0 / -errno instead; only code that can fail on behalf of a client
 * fills an NbError.
 */
#pragma once

#include <stdarg.h>

#include "cleanup.h"
#include "error_codes.h"

typedef struct NbError {
    const char *code; /* static string from error_codes.h */
    char *message;
} NbError;

/* Sets *err (when err is not NULL and *err is still NULL) and returns -1, so callers can write
 * `return nb_error_set(err, NB_ERR_X, "...")`. */
int nb_error_set(NbError **err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int nb_error_setv(NbError **err, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void nb_error_free(NbError *e);
/* Moves src into *dst (when dst is set and empty), else frees it. Returns -1. */
int nb_error_propagate(NbError **dst, NbError *src);

DEFINE_TRIVIAL_CLEANUP_FUNC(NbError, nb_error_free)
#define _cleanup_error_ _cleanup_(nb_error_freep)
