#!/usr/bin/env bash
# Makes a CPU reference log for the device window's comparisons (scripts/gpu-check.sh stage 4):
# `gpt2c train` with the flags in tests/gpu_reference/NAME.flags (shared with gpu-check.sh, so
# the GPU repeats exactly this run), on the CPU in fp32, on the Tiny Shakespeare shards that
# `gpt2c prepare` makes from data/tinyshakespeare (as make demo does). The run's log.jsonl (per
# step: loss, learning rate, gradient norm) becomes tests/gpu_reference/NAME_cpu_PRECISION.jsonl,
# to be committed. d12 takes about 30 s a step on 2 free cores (more when they are shared).
#
#   scripts/gpu-reference.sh NAME [GPT2C] [PRECISION]
#       NAME: d2 or d12; GPT2C: default build/gpt2c; PRECISION: fp32 (the reference, default) or
#       bf16 (the CPU's own bf16 path, committed beside it to show the scale of bf16's drift)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/gpu-reference.sh NAME [GPT2C]}
gpt2c=${2:-build/gpt2c}
precision=${3:-fp32}
flags_file=tests/gpu_reference/$name.flags
[ -f "$flags_file" ] || { echo "gpu-reference: no $flags_file" >&2; exit 2; }
read -r -a flags <"$flags_file"
out=out/gpu-reference/${name}_$precision
"$gpt2c" prepare --input data/tinyshakespeare/input.txt --split-blank-lines \
         --out-dir out/tinyshakespeare --quiet
rm -rf "$out"
nice "$gpt2c" train "${flags[@]}" --data 'out/tinyshakespeare/train_*.bin' --out-dir "$out" \
     --device cpu --precision "$precision"
cp "$out/log.jsonl" "tests/gpu_reference/${name}_cpu_$precision.jsonl"
echo "gpu-reference: tests/gpu_reference/${name}_cpu_$precision.jsonl (commit it)"
