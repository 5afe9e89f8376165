/* Whether a plan fits in the memory its backend has free: the one check, and the one message,
 * for every plan made before the work starts (training's and evaluation's activations, a KV
 * cache), so that a plan too big is refused with a sentence instead of failing in an
 * allocation or, on a GPU, part way through. */
#ifndef GPT2C_MEMORY_FIT_H
#define GPT2C_MEMORY_FIT_H

#include "ops/backend.h"

/* 0 when `need` bytes, `held` of which are allocated already, fit in what the backend says is
 * available (or it cannot say); else -1 with "WHAT needs N GB PARTS, the MEMORY has M GB
 * available: ADVICE" (M counting `held`, which the plan may use). parts names what the bytes are
 * for, e.g. " (parameters, activations)", or is "". */
int memory_fit(const gpt2_backend *be, double need, double held, const char *what,
               const char *parts, const char *advice, gpt2c_error *err);

#endif
