/* Float64 references of the ops and the finite-difference check of their backwards. They are
 * slow and obvious on purpose: a loop per formula, in the order the formula reads. */
#include "op_reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/ops.h"

int ref_check_grad(const char *what, ref_fn f, const void *ctx, const double *x0, size_t nx,
                   size_t ny, const double *R, const double *op_grad, double atol, double rtol) {
    double *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y), *g = malloc(nx * sizeof *g);
    memcpy(x, x0, nx * sizeof *x);
    /* the inputs not differentiated take the op's own value: they compare equal */
    memcpy(g, op_grad, nx * sizeof *g);
    size_t points = nx < REF_FD_POINTS ? nx : REF_FD_POINTS;
    for (size_t k = 0; k < points; k++) {
        size_t i = k * nx / points;
        double h = 1e-6 * (1 + fabs(x0[i])), lp = 0, lm = 0;
        x[i] = x0[i] + h;
        f(x, y, ctx);
        for (size_t j = 0; j < ny; j++) lp += y[j] * R[j];
        x[i] = x0[i] - h;
        f(x, y, ctx);
        for (size_t j = 0; j < ny; j++) lm += y[j] * R[j];
        x[i] = x0[i];
        g[i] = (lp - lm) / (2 * h);
    }
    int ok = check_near(what, op_grad, g, nx, atol, rtol);
    free(x), free(y), free(g);
    return ok;
}

void ref_embed(const double *x, double *y, const void *vctx) {
    const ref_emb *c = vctx;
    const double *wpe = x + (size_t)c->V * c->C;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int i = 0; i < c->C; i++)
                y[((size_t)b * c->T + t) * c->C + i] =
                    x[(size_t)c->tokens[b * c->T + t] * c->C + i] + wpe[(size_t)t * c->C + i];
}

void ref_layernorm_stats(const double *inp, int N, int C, double *mean, double *rstd) {
    for (int n = 0; n < N; n++) {
        const double *row = inp + (size_t)n * C;
        double m = 0, v = 0;
        for (int i = 0; i < C; i++) m += row[i];
        m /= C;
        for (int i = 0; i < C; i++) v += (row[i] - m) * (row[i] - m);
        v /= C; /* biased, as PyTorch's */
        mean[n] = m, rstd[n] = 1 / sqrt(v + (double)GPT2_LN_EPS);
    }
}

void ref_layernorm(const double *x, double *y, const void *vctx) {
    const ref_nc *c = vctx;
    const double *w = x + (size_t)c->N * c->C, *b = w + c->C;
    for (int n = 0; n < c->N; n++) {
        double mean, rstd;
        ref_layernorm_stats(x + (size_t)n * c->C, 1, c->C, &mean, &rstd);
        for (int i = 0; i < c->C; i++)
            y[(size_t)n * c->C + i] = (x[(size_t)n * c->C + i] - mean) * rstd * w[i] + b[i];
    }
}

void ref_matmul(const double *x, double *y, const void *vctx) {
    const ref_mm *c = vctx;
    const double *w = x + (size_t)c->N * c->C, *b = w + (size_t)c->OC * c->C;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = b[o];
            for (int i = 0; i < c->C; i++) s += x[(size_t)n * c->C + i] * w[(size_t)o * c->C + i];
            y[(size_t)n * c->OC + o] = s;
        }
}

void ref_matmul_grads(const double *x, const double *R, const ref_mm *c, double *g) {
    size_t nin = (size_t)c->N * c->C, nw = (size_t)c->OC * c->C;
    const double *w = x + nin;
    memset(g, 0, (nin + nw + c->OC) * sizeof *g);
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double r = R[(size_t)n * c->OC + o];
            for (int i = 0; i < c->C; i++) {
                g[(size_t)n * c->C + i] += r * w[(size_t)o * c->C + i];       /* dinp = R w */
                g[nin + (size_t)o * c->C + i] += r * x[(size_t)n * c->C + i]; /* dw = R^T inp */
            }
            g[nin + nw + o] += r; /* dbias = column sums of R */
        }
}

void ref_attention_lse(const double *x, const ref_att *c, double *y, double *lse) {
    int hs = c->C / c->NH, C3 = 3 * c->C;
    double *p = malloc((size_t)c->T * sizeof *p);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < c->T; t++) {
                const double *q = x + ((size_t)b * c->T + t) * C3 + h * hs;
                double maxv = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    const double *k = x + ((size_t)b * c->T + u) * C3 + c->C + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    p[u] = s / sqrt(hs);
                    if (p[u] > maxv) maxv = p[u];
                }
                for (int u = 0; u <= t; u++) sum += p[u] = exp(p[u] - maxv);
                if (lse) lse[((size_t)b * c->NH + h) * c->T + t] = maxv + log(sum);
                for (int u = 0; u <= t; u++)
                    p[u] = c->round_p ? ref_round_bf16((float)(p[u] / sum)) : p[u] / sum;
                double *o = y + ((size_t)b * c->T + t) * c->C + h * hs;
                for (int i = 0; i < hs; i++) {
                    double s = 0;
                    for (int u = 0; u <= t; u++)
                        s += p[u] * x[((size_t)b * c->T + u) * C3 + 2 * c->C + h * hs + i];
                    o[i] = s;
                }
            }
    free(p);
}

void ref_attention(const double *x, double *y, const void *vctx) {
    ref_attention_lse(x, vctx, y, NULL);
}

void ref_gelu(const double *x, double *y, const void *vctx) {
    size_t n = *(const size_t *)vctx;
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5 * x[i] * (1 + tanh(sqrt(2 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
}

void ref_classifier(const double *x, double *y, const void *vctx) {
    const ref_cls *c = vctx;
    const double *wte = x + (size_t)c->N * c->C;
    double *logits = malloc((size_t)c->V * sizeof *logits);
    for (int n = 0; n < c->N; n++) {
        double maxv = -INFINITY, sum = 0;
        for (int j = 0; j < c->V; j++) { /* the padding rows V..Vp-1 are no tokens */
            double s = 0;
            for (int i = 0; i < c->C; i++) s += x[(size_t)n * c->C + i] * wte[(size_t)j * c->C + i];
            logits[j] = s;
            if (s > maxv) maxv = s;
        }
        for (int j = 0; j < c->V; j++) sum += exp(logits[j] - maxv);
        y[n] = log(sum) + maxv - logits[c->targets[n]];
    }
    free(logits);
}

float ref_round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; /* a NaN: quiet, never infinity */
    else u += 0x7fffu + ((u >> 16) & 1);                  /* to nearest, ties to even */
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}
