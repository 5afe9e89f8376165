#include "model/memory_fit.h"
#include "util/error.h"

int memory_fit(const gpt2_backend *be, double need, double held, const char *what,
               const char *parts, const char *advice, gpt2c_error *err) {
    double avail = be->ops->mem_available(); /* < 0: the backend cannot say */
    if (avail < 0 || need - held <= avail) return 0;
    return err_set(err, "%s needs %.1f GB%s, the %s has %.1f GB available: %s", what, need / 1e9,
                   parts, be->memory, (avail + held) / 1e9, advice);
}
