/* Whether a plan fits in the memory its backend has free: the one check, and the one message,
 * for every plan made before the work starts (training's and evaluation's activations, a KV
 * cache), so that a plan too big is refused with a sentence instead of failing in an
 * allocation or, on a GPU, part way through. */
#ifndef GPT2C_MEMORY_FIT_H
#define GPT2C_MEMORY_FIT_H

#include "model/gpt2.h"
#include "ops/backend.h"

/* 0 when `need` bytes, `held` of which are allocated already, fit in what the backend says is
 * available (or it cannot say); else -1 with "WHAT needs N GB PARTS, the MEMORY has M GB
 * available: ADVICE" (M counting `held`, which the plan may use). parts names what the bytes are
 * for, e.g. " (parameters, activations)", or is "". */
int memory_fit(const gpt2_backend *be, double need, double held, const char *what,
               const char *parts, const char *advice, gpt2c_error *err);

/* What a model holds before its plan: its parameters and their bf16 copy (bytes). */
double memory_fit_held(const gpt2_model *m);

/* The one way a model's activations are planned (session_plan, HellaSwag's plan): gpt2_plan
 * for B x T micro-batches once memory_fit says gpt2_plan_bytes fits, memory_fit_held counted
 * as held (m is a session's model, or a view of one: allocated already).
 * what names the plan ("batch 8 x 1024"); advice is the message's ending when it does not fit. */
int memory_fit_plan(gpt2_model *m, int B, int T, int training, size_t moments, const char *what,
                    const char *advice, gpt2c_error *err);

#endif
