#!/usr/bin/env bash
# Bugs injected into today's CUDA kernels, one at a time, each run through the op test (and the
# attention's bf16 test, whose forward is the only user of wmma) on the emulated GPU in the three
# thread orders: the evidence that the CUDA-on-CPU runtime and the tests catch them (README, "How
# GPU code is tested without a GPU"). Not part of make test: each mutation rebuilds. Every file
# is restored, also when interrupted. A subset: scripts/cuda-mutations.sh BUILD_DIR 'regex'
# runs only the mutations whose description matches.
# Usage: scripts/cuda-mutations.sh [BUILD_DIR [REGEX]]   (a build configured with -DGPT2C_CUDA_EMULATE=ON)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-test}
ONLY=${2:-}
TARGETS=(test_ops test_attention_bf16)
backup=$(mktemp -d)
restore() { [ -n "${current:-}" ] && cp "$backup/file" "$current"; current=; }
trap 'restore; cmake --build "$BUILD" --target "${TARGETS[@]}" >/dev/null 2>&1; rm -rf "$backup"' EXIT

mutate() { # file sed-expression what
    if [ -n "$ONLY" ] && ! [[ $3 =~ $ONLY ]]; then return; fi
    current=$1
    cp "$1" "$backup/file"
    sed -i "$2" "$1"
    if cmp -s "$1" "$backup/file"; then echo "$3: the mutation no longer applies"; restore; return; fi
    if ! cmake --build "$BUILD" --target "${TARGETS[@]}" >/dev/null 2>&1; then
        echo "$3: does not build"; restore; return
    fi
    line="$3:"
    for order in warp reversed lockstep; do
        out=$(GPT2C_CUDA_EMULATE_ORDER=$order "$BUILD/tests/test_ops" cuda 2>&1)
        rc=$?
        out2=$(GPT2C_CUDA_EMULATE_ORDER=$order "$BUILD/tests/test_attention_bf16" 2>&1)
        rc2=$?
        [ $rc -eq 0 ] && rc=$rc2 && out=$out2
        verdict=$( [ $rc -eq 0 ] && echo "missed" || echo "caught" )
        why=$(echo "$out" | grep -m1 -oE "CUDA emulation: .{0,60}|[0-9]+ failed")
        line="$line $order $verdict (${why:-rc $rc});"
    done
    echo "$line"
    restore
}

mutate src/ops/cuda/attention.cu 's/bool seen = u <= t \&\& u < T;/bool seen = u < t \&\& u < T;/' \
    "attention forward: the mask drops the diagonal key"
mutate src/ops/cuda/attention.cu 's|^        __syncwarp(); /\* the warp.s rows of p, written.*|        ;|' \
    "attention forward: P V reads the warp's probabilities before they are all written"
mutate src/ops/cuda/attention.cu 's/const int last_key = min(q0 + ATT_TILE, T) - 1;$/const int last_key = min(q0 + ATT_TILE, T) - 2;/' \
    "attention forward: the causal skip drops the last key tile's last key"
mutate src/ops/cuda/attention.cu 's/for (int q0 = k0; q0 < T; q0 += ATT_TILE) {/for (int q0 = k0 + ATT_TILE; q0 < T; q0 += ATT_TILE) {/' \
    "attention dK dV: the causal skip drops the diagonal query tile"
mutate src/ops/cuda/attention.cu 's|^        __syncthreads(); /\* the previous query tile is read by every warp.*|        ;|' \
    "attention dK dV: a query tile restaged while other warps still read the last"
mutate src/ops/cuda/attention.cu 's/dq\[rr\]\[i\] += ds\[(r0 + rr) \* ATT_TILE + j\] \* kc;/dq[rr][i] += ds[(r0 + rr) * ATT_TILE + (j \& 15)] * kc;/' \
    "attention dQ: reads half the tile's dS"
mutate src/ops/cuda/attention.cu 's|^        __syncwarp(); /\* the scores, stored lane by lane.*|        ;|' \
    "attention wmma: the softmax reads scores before every lane stored its share"
mutate src/ops/cuda/attention.cu 's|^        __syncwarp(); /\* this tile.s P V, stored lane by lane.*|        ;|' \
    "attention wmma: O adds P V before every lane stored its share"
mutate src/ops/cuda/attention.cu 's/if (k0 + n \* WM > warp_last) break;/if (k0 + n * WM > warp_last \&\& lane) break;/' \
    "attention wmma: lane 0 alone goes on to a product"
mutate src/ops/cuda/attention.cu 's/int u0 = split \* keys, u1 = min(last + 1, u0 + keys);/int u0 = split * keys, u1 = min(last, u0 + keys);/' \
    "generation attention: a new row misses its own key"
mutate src/ops/cuda/layernorm.cu '0,/if (row >= N) return;/{s/if (row >= N) return;/if (row >= N - 1) return;/}' \
    "layernorm: the last row's warp leaves early"
mutate src/ops/cuda/cuda_common.cuh 's/x += __shfl_xor_sync(0xffffffffu, x, o)/x += __shfl_xor_sync(0x0000ffffu, x, o)/' \
    "warp_sum shuffles with half the lanes"
mutate src/ops/cuda/adamw.cu '0,/        __syncthreads();/{s/        __syncthreads();/        ;/}' \
    "the norm's tree reduction without its barrier"
mutate src/ops/cuda/classifier.cu '0,/^    __syncthreads();$/{s/^    __syncthreads();$/    ;/}' \
    "softmax reads the block's maxima before their barrier"
mutate src/ops/cuda/classifier.cu 's|^    __syncthreads(); /\* z\[target\] was read above.*|    ;|' \
    "softmax overwrites the target's logit before the loss reads it"
mutate src/ops/cuda/elementwise.cu 's/} else if (i - whole < n % P) {/} else if (i - whole + 1 < n % P) {/' \
    "the element-wise ops leave the last value past their 128-bit packs unwritten"
mutate src/ops/cuda/classifier.cu '/part\[threadIdx.x\] += part\[threadIdx.x + k\];/{n;s/__syncthreads();/;/}' \
    "the loss sum's tree without its barrier"
