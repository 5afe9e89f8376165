/* The ops' float64 references (plain loops, written from the formulas and nothing else), and
 * the check of a backward against central finite differences of such a reference. The CPU
 * backend is checked against these; every other backend against the CPU (test_ops.c). */
#ifndef GPT2C_OP_REFERENCE_H
#define GPT2C_OP_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

/* A reference forward: packed inputs x -> outputs y; ctx holds the shapes. */
typedef void (*ref_fn)(const double *x, double *y, const void *ctx);

/* Checks an op's gradient op_grad[nx] of L = sum(y * R) at x[nx] against central differences
 * of f (ny outputs), within atol + rtol |numeric|. Past REF_FD_POINTS inputs only that many,
 * evenly spread, are differentiated (each costs two forwards), so that a case sized for a GPU's
 * kernels stays fast. */
#define REF_FD_POINTS 2048
int ref_check_grad(const char *what, ref_fn f, const void *ctx, const double *x, size_t nx,
                   size_t ny, const double *R, const double *op_grad, double atol, double rtol);

typedef struct ref_nc { int N, C; } ref_nc;
typedef struct ref_mm { int N, C, OC; } ref_mm;
typedef struct ref_att { int B, T, C, NH, round_p; } ref_att;
typedef struct ref_emb { int B, T, C, V; const int32_t *tokens; } ref_emb;
typedef struct ref_cls { int N, C, V, Vp; const int32_t *targets; } ref_cls;

/* x = [wte (V*C) | wpe (T*C)] -> out (B*T*C) */
void ref_embed(const double *x, double *y, const void *ctx);
/* x = [inp (N*C) | w (C) | b (C)] -> out (N*C); mean and rstd of each row (GPT2_LN_EPS). */
void ref_layernorm(const double *x, double *y, const void *ctx);
void ref_layernorm_stats(const double *inp, int N, int C, double *mean, double *rstd);
/* x = [inp (N*C) | w (OC*C) | bias (OC)] -> out (N*OC) */
void ref_matmul(const double *x, double *y, const void *ctx);
/* The gradients of L = sum(out * R) for x = [inp | w | bias], written out (the bf16 products'
 * references: their inputs rounded, which finite differences cannot express). */
void ref_matmul_grads(const double *x, const double *R, const ref_mm *c, double *g);
/* x = qkv (B*T*3C) -> out (B*T*C), causal; lse (B*NH*T, may be NULL): each row's log-sum-exp
 * of the scaled scores. With round_p, the probabilities are rounded to bf16 before P V (the
 * products of a bf16 attention). */
void ref_attention(const double *x, double *y, const void *ctx);
void ref_attention_lse(const double *x, const ref_att *c, double *y, double *lse);
/* x (n) -> GELU (tanh approximation); ctx: the size_t n */
void ref_gelu(const double *x, double *y, const void *ctx);
/* x = [inp (N*C) | wte (Vp*C)] -> losses (N); only the first V rows of wte are tokens */
void ref_classifier(const double *x, double *y, const void *ctx);

/* f rounded to bfloat16 (nearest even; a NaN stays NaN), as a float. */
float ref_round_bf16(float f);

#endif
