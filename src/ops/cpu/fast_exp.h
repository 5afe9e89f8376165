/* exp(x) for x <= 0 in a form the compiler vectorises (libm's expf and tanhf are a call per
 * element; in a training step they cost 8% for the GELU alone). e^x = 2^t = 2^n * 2^f with
 * n = round(t), |f| <= 1/2, and 2^f from its Taylor series up to f^6, whose remainder is below
 * 2e-7 relative: about 1 ulp over the whole range. Inputs below -87 give e^-87 (1.6e-38)
 * instead of smaller numbers, which keeps 2^n a normal float. Needs -fno-trapping-math to
 * vectorise (the clamp is a branch otherwise). */
#ifndef GPT2C_FAST_EXP_H
#define GPT2C_FAST_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float fast_exp_nonpos(float x) {
    x = x > -87.0f ? x : -87.0f;
    float t = x * 1.4426950408889634f; /* log2(e) */
    float nf = floorf(t + 0.5f), f = t - nf;
    float y = f * 0.6931471805599453f; /* ln 2 */
    float p = 1.0f + y * (1.0f + y * (0.5f + y * (1.0f / 6 + y * (1.0f / 24 + y * (1.0f / 120 +
                                                                  y * (1.0f / 720))))));
    int32_t bits = ((int32_t)nf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
