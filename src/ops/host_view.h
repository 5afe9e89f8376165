/* A backend buffer seen from the host, for the code that reads or writes it there (init, loading
 * and saving models and states): the buffer itself when the backend's memory is the host's (the
 * CPU: no copy), else a host copy, downloaded first when `read`, and uploaded back by
 * host_view_done when `write`. host_view returns NULL when the copy cannot be allocated. */
#ifndef GPT2C_HOST_VIEW_H
#define GPT2C_HOST_VIEW_H

#include <stdlib.h>

#include "ops/backend.h"

static inline float *host_view(const gpt2_backend *be, float *buf, size_t n, int read) {
    if (be->host_memory) return buf;
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (h && read) be->ops->download(h, buf, n * sizeof *h);
    return h;
}

static inline void host_view_done(const gpt2_backend *be, float *buf, float *h, size_t n,
                                  int write) {
    if (be->host_memory || !h) return;
    if (write) be->ops->upload(buf, h, n * sizeof *h);
    free(h);
}

#endif
