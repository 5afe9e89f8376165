/* Filling a gpt2c_error: library code reports failures as values, never by printing. */
#ifndef GPT2C_ERROR_H
#define GPT2C_ERROR_H

#include <stdarg.h>
#include <stdio.h>

#include "gpt2c.h"

__attribute__((format(printf, 2, 3))) static inline int err_set(gpt2c_error *err,
                                                                 const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#endif
