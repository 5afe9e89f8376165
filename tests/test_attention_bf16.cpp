/* The CUDA attention's bf16 instantiations against its own fp32 ones on the emulated GPU: the
 * same inputs, all bf16 values, through the fp32 and the bf16 paths. The fp32 FMA kernels
 * compute the same fp32 numbers from a bf16 tile as from its float copy, so the bf16 backward
 * and generation (KV cache in bf16) must give the fp32 results rounded to bf16, bit for bit;
 * the forward runs on tensor cores (wmma) with P rounded to bf16 for P V, so its output is near
 * (bf16's precision) and its lse (fp32 scores) nearer. Shapes: several query and key tiles of
 * both kernels (64 and 32 rows), part tiles, batches, heads of 32 to 128.
 *
 * Why it stays beside the op harness, whose bf16 cases (test_ops cuda) run the same kernels on
 * bf16 activations: the harness compares every backend with the CPU, so a bf16 result passes
 * there anywhere within bf16's rounding of the CPU's (its act_slack, 2^-7); a bf16 instantiation
 * that sums in another order, drops a rounding or reads one element wrong can stay inside that.
 * The bitwise relation between the two instantiations of one kernel is a check the harness has
 * no place for (it runs an op once per backend and precision), and it covers heads of 64 and 96,
 * B = 2 and three 64-row tiles, which the harness's bf16 attention cases do not. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>

#include <vector>

#include "ops/cuda/cuda_kernels.h"
extern "C" {
#include "check.h"
}

extern int cuda_bf16_acts; /* cuda_common.cuh's: which instantiation the ops dispatch to */

static float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

template <class T> static T *to_device(const std::vector<T> &h) {
    void *p = nullptr;
    CHECK(cudaMalloc(&p, h.size() * sizeof(T)) == cudaSuccess);
    CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    return (T *)p;
}
template <class T> static std::vector<T> zeros(size_t n) { return std::vector<T>(n); }
template <class T> static std::vector<double> back(const T *d, size_t n) {
    cuda_sync(); /* the ops run on the backend's stream */
    std::vector<T> h(n);
    CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    std::vector<double> out(n);
    for (size_t i = 0; i < n; i++) out[i] = (float)h[i];
    return out;
}
static std::vector<__nv_bfloat16> bf16s(const std::vector<float> &v) {
    std::vector<__nv_bfloat16> o(v.size());
    for (size_t i = 0; i < v.size(); i++) o[i] = __float2bfloat16_rn(v[i]);
    return o;
}
static std::vector<double> rounded(const std::vector<double> &v) {
    std::vector<double> o(v.size());
    for (size_t i = 0; i < v.size(); i++) o[i] = bf16_round((float)v[i]);
    return o;
}
static void near(const char *what, const std::vector<double> &got, const std::vector<double> &want,
                 double atol, double rtol) {
    CHECK(check_near(what, got.data(), want.data(), got.size(), atol, rtol));
}

static void check_shape(int B, int T, int C, int NH, unsigned *seed) {
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
    std::vector<float> qkv(nq), dout(no);
    auto uniform = [seed] {
        *seed = *seed * 1103515245u + 12345u;
        return (float)((*seed >> 8) % 4001) / 1000.0f - 2.0f;
    };
    for (auto &x : qkv) x = bf16_round(uniform());
    for (auto &x : dout) x = bf16_round(uniform());
    /* D of the backward, the generation's spans and partials */
    float *scratch = to_device(zeros<float>(nl + ((size_t)1 << 20)));
    std::vector<gpt2_span> prompts, steps;
    for (int b = 0; b < B; b++) prompts.push_back({b, 0, T}), steps.push_back({b, T - 1, 1});
    size_t cache = (size_t)B * T * C;

    /* fp32 */
    cuda_bf16_acts = 0;
    float *q32 = to_device(qkv), *o32 = to_device(zeros<float>(no)), *l32 = to_device(zeros<float>(nl));
    cuda_attention_forward((gpt2_act *)o32, l32, (gpt2_act *)q32, B, T, C, NH, 0, scratch);
    std::vector<double> out32 = back(o32, no), lse32 = back(l32, nl), out_r = rounded(out32);
    std::vector<float> out_rf(out_r.begin(), out_r.end());
    float *or32 = to_device(out_rf), *do32 = to_device(dout), *dq32 = to_device(zeros<float>(nq));
    /* the backward from O rounded to bf16, as the bf16 path's O is */
    cuda_attention_backward((gpt2_act *)dq32, (gpt2_act *)do32, (gpt2_act *)q32, (gpt2_act *)or32,
                            l32, B, T, C, NH, 0, scratch);
    std::vector<double> dqkv32 = back(dq32, nq);
    float *kc32 = to_device(zeros<float>(cache)), *vc32 = to_device(zeros<float>(cache));
    float *g32 = to_device(zeros<float>(no));
    cuda_attention_forward_kv((gpt2_act *)g32, (gpt2_act *)q32, (gpt2_act *)kc32, (gpt2_act *)vc32,
                              prompts.data(), B, T, C, NH, scratch);
    std::vector<double> gen32 = back(g32, no);

    /* bf16 */
    cuda_bf16_acts = 1;
    __nv_bfloat16 *qb = to_device(bf16s(qkv)), *ob = to_device(zeros<__nv_bfloat16>(no));
    float *lb = to_device(zeros<float>(nl));
    cuda_attention_forward((gpt2_act *)ob, lb, (gpt2_act *)qb, B, T, C, NH, 1, scratch);
    near("forward out (wmma)", back(ob, no), out32, 1e-2, 1e-2);
    near("forward lse (wmma)", back(lb, nl), lse32, 1e-5, 1e-5);
    __nv_bfloat16 *orb = to_device(bf16s(out_rf)), *dob = to_device(bf16s(dout));
    __nv_bfloat16 *dqb = to_device(zeros<__nv_bfloat16>(nq));
    cuda_attention_backward((gpt2_act *)dqb, (gpt2_act *)dob, (gpt2_act *)qb, (gpt2_act *)orb, l32,
                            B, T, C, NH, 1, scratch);
    near("backward dqkv", back(dqb, nq), rounded(dqkv32), 0, 0);
    __nv_bfloat16 *kcb = to_device(zeros<__nv_bfloat16>(cache)), *vcb = to_device(zeros<__nv_bfloat16>(cache));
    __nv_bfloat16 *gb = to_device(zeros<__nv_bfloat16>(no));
    cuda_attention_forward_kv((gpt2_act *)gb, (gpt2_act *)qb, (gpt2_act *)kcb, (gpt2_act *)vcb,
                              prompts.data(), B, T, C, NH, scratch);
    near("generation out", back(gb, no), rounded(gen32), 0, 0);
    /* each sequence's last position again, as a decoding step over its bf16 cache */
    std::vector<float> last;
    std::vector<double> want;
    for (int b = 0; b < B; b++) {
        size_t row = (size_t)b * T + T - 1;
        last.insert(last.end(), qkv.begin() + row * 3 * C, qkv.begin() + (row + 1) * 3 * C);
        want.insert(want.end(), gen32.begin() + row * C, gen32.begin() + (row + 1) * C);
    }
    __nv_bfloat16 *lq = to_device(bf16s(last)), *sb = to_device(zeros<__nv_bfloat16>((size_t)B * C));
    cuda_attention_forward_kv((gpt2_act *)sb, (gpt2_act *)lq, (gpt2_act *)kcb, (gpt2_act *)vcb,
                              steps.data(), B, T, C, NH, scratch);
    near("decoding step out", back(sb, (size_t)B * C), rounded(want), 0, 0);
    cuda_bf16_acts = 0;
    cuda_sync();
    void *bufs[] = {scratch, q32, o32, l32, or32, do32, dq32, kc32, vc32, g32,
                    qb, ob, lb, orb, dob, dqb, kcb, vcb, gb, lq, sb};
    for (void *p : bufs) CHECK(cudaFree(p) == cudaSuccess);
}

int main(void) {
    gpt2c_error err;
    if (cuda_init(&err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    unsigned seed = 1;
    check_shape(2, 150, 128, 2, &seed); /* heads of 64: 3 tiles of 64 rows, 5 of 32 */
    check_shape(1, 77, 128, 1, &seed);  /* heads of 128 */
    check_shape(1, 40, 96, 1, &seed);   /* heads of 96 */
    check_shape(1, 33, 64, 2, &seed);   /* heads of 32, a one-row last tile */
    cuda_close();
    return check_done();
}
