#!/usr/bin/env bash
# Bugs injected into today's CUDA kernels, one at a time, each run through the op test on the
# emulated GPU in the three thread orders: the evidence that the CUDA-on-CPU runtime and the op
# cases catch them (README, "How GPU code is tested without a GPU"). Not part of make test: each
# mutation rebuilds. Every file is restored, also when interrupted.
# Usage: scripts/cuda-mutations.sh [BUILD_DIR]   (a build configured with -DGPT2C_CUDA_EMULATE=ON)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-test}
backup=$(mktemp -d)
restore() { [ -n "${current:-}" ] && cp "$backup/file" "$current"; current=; }
trap 'restore; cmake --build "$BUILD" --target test_ops >/dev/null 2>&1; rm -rf "$backup"' EXIT

mutate() { # file sed-expression what
    current=$1
    cp "$1" "$backup/file"
    sed -i "$2" "$1"
    if cmp -s "$1" "$backup/file"; then echo "$3: the mutation no longer applies"; restore; return; fi
    if ! cmake --build "$BUILD" --target test_ops >/dev/null 2>&1; then
        echo "$3: does not build"; restore; return
    fi
    line="$3:"
    for order in warp reversed lockstep; do
        out=$(GPT2C_CUDA_EMULATE_ORDER=$order "$BUILD/tests/test_ops" cuda 2>&1)
        rc=$?
        verdict=$( [ $rc -eq 0 ] && echo "missed" || echo "caught" )
        why=$(echo "$out" | grep -m1 -oE "CUDA emulation: .{0,60}|[0-9]+ failed")
        line="$line $order $verdict (${why:-rc $rc});"
    done
    echo "$line"
    restore
}

mutate src/ops/cuda/attention.cu 's/for (int u = 0; u <= t; u++) {/for (int u = 0; u < t; u++) {/' \
    "attention skips the diagonal key"
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
