#include "error.h"

#include <stdio.h>
#include <stdlib.h>

int
nb_error_setv(NbError **err, const char *code, const char *fmt, va_list ap)
{
    if (!err || *err)
        return -1;
    NbError *e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    e->code = code;
    if (vasprintf(&e->message, fmt, ap) < 0)
        e->message = NULL;
    *err = e;
    return -1;
}

int
nb_error_set(NbError **err, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nb_error_setv(err, code, fmt, ap);
    va_end(ap);
    return -1;
}

void
nb_error_free(NbError *e)
{
    if (!e)
        return;
    free(e->message);
    free(e);
}

int
nb_error_propagate(NbError **dst, NbError *src)
{
    if (dst && !*dst)
        *dst = src;
    else
        nb_error_free(src);
    return -1;
}
