#!/usr/bin/env bash
# The device window's one command (README "The device window"), on the GPU machine, after
# scripts/gpu-prep.sh here: every check that needs a GPU, in stages with time budgets of their
# own (about 8 minutes in all), each writing one line (stage, PASS/FAIL/SKIP, key numbers,
# seconds) to OUTDIR/summary.txt and stdout as it finishes; at most 8 files in OUTDIR.
#
#   scripts/gpu-check.sh OUTDIR
#
#   1 env        nvidia-smi, driver, CUDA, cuDNN, NCCL, the carried build      -> env.txt
#   2 binaries   the carried gpt2c and test_ops (missing libraries from the carried .debs), or
#                a build there; gpt2c info                                     -> env.txt
#   3 ops        test_ops cuda: every CUDA op against the CPU, and run twice   -> ops.txt
#   4 compare    d12 bf16, 50 steps, against the committed CPU fp32 log; fp32 with TF32 off, 10
#                steps, at a tighter tolerance                 -> compare.txt, gpu_d12_bf16.jsonl
#   5 determinism two identical runs and an interrupted-and-resumed one: byte-equal models
#   6 sanitizer  compute-sanitizer memcheck (train and sample), racecheck, synccheck -> sanitizer.txt
#   7 bench      d12, T=1024, the largest micro-batch that fits, 2^19 tokens a step: tok/s, MFU,
#                peak memory                                                    -> bench.txt
#   8 torch      bench/torch_gpt2_gpu.py at the same sizes, if time is left    -> bench.txt
#   8 llmc       llm.c's train_gpt2cu, if one was carried in .gpu/llmc/         -> bench.txt
# Every gpt2c command's output goes to runs.txt.
#
# GPT2C_GPU_CHECK_DRY=1: the same stages at tiny sizes (d2) on the emulated CUDA backend (a
# -DGPT2C_CUDA_EMULATE=ON build: GPT2C_GPU_CHECK_GPT2C and GPT2C_GPU_CHECK_TEST_OPS name its
# binaries), with generous budgets, for make test (tests/test_gpu_check.py); what needs a real
# GPU (nvidia-smi, compute-sanitizer) reports SKIP with the reason. Exit status: 1 if a stage
# failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${1:?usage: scripts/gpu-check.sh OUTDIR}
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd)
DRY=${GPT2C_GPU_CHECK_DRY:-0}
PY=${GPT2C_GPU_CHECK_PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpt2c-gpu-check.XXXXXX")
GPT2C=${GPT2C_GPU_CHECK_GPT2C:-$ROOT/.gpu/bin/gpt2c}
TEST_OPS=${GPT2C_GPU_CHECK_TEST_OPS:-$ROOT/.gpu/bin/test_ops}
# the toolkit's tools (nvcc for a build there, compute-sanitizer) where PATH lacks them
[ -d /usr/local/cuda/bin ] && case ":$PATH:" in *:/usr/local/cuda/bin:*) ;; *) PATH=$PATH:/usr/local/cuda/bin ;; esac
SUMMARY=$OUTDIR/summary.txt ENV=$OUTDIR/env.txt OPS=$OUTDIR/ops.txt CMP=$OUTDIR/compare.txt
RUNS=$OUTDIR/runs.txt SAN=$OUTDIR/sanitizer.txt BENCH=$OUTDIR/bench.txt
: >"$SUMMARY"; : >"$ENV"; : >"$RUNS"

# The sizes. The comparison repeats a committed CPU reference run (tests/gpu_reference/:
# NAME.flags are its flags, NAME_cpu_fp32.jsonl its log).
if [ "$DRY" = 1 ]; then
  REF=d2 CMP_STEPS=4 FP32_STEPS=2 DET_STEPS=2
  BENCH_MODEL=d2 BENCH_T=32 BENCH_TOTAL=128 BENCH_STEPS=2 PROBE_B=4
  TOTAL_BUDGET=3600 STAGE_SCALE=10 # ceilings only: a dry run must never hit one
else
  REF=d12 CMP_STEPS=50 FP32_STEPS=10 DET_STEPS=6
  BENCH_MODEL=d12 BENCH_T=1024 BENCH_TOTAL=524288 BENCH_STEPS=12 PROBE_B=512
  TOTAL_BUDGET=${GPT2C_GPU_CHECK_BUDGET:-480} STAGE_SCALE=1
fi
read -r -a REF_FLAGS <"$ROOT/tests/gpu_reference/$REF.flags"
REF_LOG=$ROOT/tests/gpu_reference/${REF}_cpu_fp32.jsonl
DATA=$WORK/data/train_*.bin
# Tolerances against the CPU's fp32 run (tests/gpu_reference/README.md says why these, from the
# CPU's own bf16 run against it). bf16: step by step until the first gradient spike (step 7 of
# d12), where runs of a 4-sequence batch part ways; then the mean loss and median norm of every
# 10 steps. fp32 with TF32 off: the same arithmetic in another order, step by step.
BF16=(--loss-tol 0.01 --norm-rtol 0.02 --tight-steps 7 --window 10 --window-loss-tol 0.05 --window-norm-rtol 0.5)
FP32=(--loss-tol 1e-3 --norm-rtol 5e-3)

# ---- stages: timing, budgets, the summary line ----
GLOBAL_END=$((SECONDS + TOTAL_BUDGET))
STAGE_END=0
FAILED=0
broken="" # set when the binaries do not work: the stages after them are skipped with it
stage() { # stage N NAME BUDGET_S FUNCTION: run it, then its line
  local n=$1 name=$2 budget=$(($3 * STAGE_SCALE)) fn=$4 t0=$SECONDS
  STATUS=SKIP DETAIL=""
  STAGE_END=$((SECONDS + budget)); [ $STAGE_END -le $GLOBAL_END ] || STAGE_END=$GLOBAL_END
  if [ $((STAGE_END - SECONDS)) -lt 5 ]; then
    DETAIL="reason: out of time (the ${TOTAL_BUDGET} s of the whole check are spent)"
  elif [ -n "$broken" ] && [ "$n" -gt 2 ]; then
    DETAIL="reason: $broken"
  else
    "$fn"
  fi
  [ "$STATUS" = FAIL ] && FAILED=1
  printf '%s %-11s %s %s (%d s)\n' "$n" "$name" "$STATUS" "$DETAIL" $((SECONDS - t0)) | tee -a "$SUMMARY"
}
# a command under what is left of the stage's budget (exit 124 when it runs out)
run_t() {
  local left=$((STAGE_END - SECONDS))
  [ $left -ge 1 ] || return 124
  timeout -k 5 "$left" "$@"
}
# gpt2c, its output appended to runs.txt under a header
gpt2c_run() {
  echo "== gpt2c $*" >>"$RUNS"
  run_t "$GPT2C" "$@" >>"$RUNS" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || echo "== exit status $rc" >>"$RUNS"
  return $rc
}
train() { # train OUT_DIR FLAGS...: the reference run's flags, then these (later flags win)
  local out=$1; shift
  gpt2c_run train "${REF_FLAGS[@]}" --data "$DATA" --out-dir "$out" --device cuda "$@"
}
timed_out() { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; }

# ---- 1: environment ----
st_env() {
  local gpu="" driver="" cuda="" cudnn="" nccl=""
  {
    echo "== gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ), dry run: $DRY"
    uname -a; (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"); nproc
    echo "== .gpu/manifest"; cat "$ROOT/.gpu/manifest" 2>/dev/null || echo "(none)"
  } >>"$ENV" 2>&1
  if command -v nvidia-smi >/dev/null; then
    run_t nvidia-smi >>"$ENV" 2>&1
    gpu=$(run_t nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    driver=$(run_t nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
  fi
  command -v nvcc >/dev/null && cuda=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  # cuDNN and NCCL: the headers of the toolkit, or else what PyTorch was built with
  local h
  for h in /usr/include/cudnn_version.h /usr/local/cuda/include/cudnn_version.h; do
    [ -f "$h" ] && cudnn=$(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{v = v (v ? "." : "") $3} END {print v}' "$h") && break
  done
  for h in /usr/include/nccl.h /usr/local/cuda/include/nccl.h; do
    [ -f "$h" ] && nccl=$(awk '/#define NCCL_(MAJOR|MINOR|PATCH) /{v = v (v ? "." : "") $3} END {print v}' "$h") && break
  done
  local torch_env
  torch_env=$(run_t "$PY" -c 'import torch; c = torch.backends.cudnn.version() if torch.cuda.is_available() else None
n = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None
print(torch.__version__, torch.version.cuda, c, n)' 2>/dev/null)
  echo "== python3 $("$PY" --version 2>&1); torch, its CUDA, cuDNN, NCCL: ${torch_env:-not importable}" >>"$ENV"
  [ -n "$cudnn" ] || cudnn=$(echo "$torch_env" | awk '$3 != "None" && $3 != "" {print $3 " (PyTorch)"}')
  [ -n "$nccl" ] || nccl=$(echo "$torch_env" | awk '$4 != "None" && $4 != "" {print $4 " (PyTorch)"}')
  DETAIL="gpu=${gpu:-none} driver=${driver:-none} cuda=${cuda:-none} cudnn=${cudnn:-none} nccl=${nccl:-none}"
  if [ -n "$gpu" ]; then STATUS=PASS
  elif [ "$DRY" = 1 ]; then STATUS=PASS DETAIL="$DETAIL (dry run: the emulated device, no nvidia-smi)"
  else STATUS=FAIL DETAIL="$DETAIL: nvidia-smi lists no GPU"
  fi
  GPU_NAME=$gpu
}

# ---- 2: the binaries ----
binaries_work() { # gpt2c runs and sees a device; test_ops loads
  local info
  info=$(run_t "$GPT2C" info 2>&1) || return 1
  { echo "== gpt2c info ($GPT2C)"; echo "$info"; } >>"$ENV"
  run_t ldd "$TEST_OPS" >/dev/null 2>&1 || return 1
  if [ "$DRY" = 1 ]; then echo "$info" | grep -q '^cuda: built'
  else echo "$info" | grep -Eq '^cuda: built \([1-9][0-9]* device'
  fi
}
resolve_libs() { # the carried .debs for what the binaries lack here (scripts/gpu-libs.sh)
  local dir
  dir=$(run_t "$ROOT/scripts/gpu-libs.sh" "$ROOT/.gpu/debs" "$WORK/deps" "$GPT2C" "$TEST_OPS" 2>>"$ENV") || return 1
  [ -z "$dir" ] || export LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}
st_binaries() {
  local how="carried" why=""
  if [ "$DRY" = 1 ]; then
    how="the emulated build's"
  elif [ ! -x "$GPT2C" ] || [ ! -x "$TEST_OPS" ]; then
    why="no carried binaries (.gpu/bin: run scripts/gpu-prep.sh before the window)"
  else
    local want have
    want=$(awk '$1 == "sources" {print $2}' "$ROOT/.gpu/manifest" 2>/dev/null)
    have=$("$ROOT/scripts/gpu-source-hash.sh")
    [ "$want" = "$have" ] || why="carried binaries built from other sources ($want, the tree is $have)"
  fi
  if [ -z "$why" ]; then
    resolve_libs || why="libraries missing (env.txt)"
    [ -n "$why" ] || binaries_work || why="the carried gpt2c does not run or sees no GPU (env.txt)"
  fi
  if [ -n "$why" ]; then # build here, with the carried -dev packages where the machine lacks them
    echo "== building here: $why" >>"$ENV"
    how="built here ($why)"
    mkdir -p "$WORK/deps"
    [ -e "$WORK/deps/.unpacked" ] || { for d in "$ROOT"/.gpu/debs/*.deb; do dpkg-deb -x "$d" "$WORK/deps"; done; touch "$WORK/deps/.unpacked"; }
    if ! DEPS_PREFIX=$WORK/deps run_t "$ROOT/scripts/gpu-build.sh" "$WORK/build" "$(nproc)" >>"$ENV" 2>&1; then
      STATUS=FAIL DETAIL="$how; the build failed (env.txt)"; broken="no working gpt2c (stage 2)"; return
    fi
    GPT2C=$WORK/build/gpt2c TEST_OPS=$WORK/build/tests/test_ops
    if ! resolve_libs || ! binaries_work; then
      STATUS=FAIL DETAIL="$how; it does not run or sees no GPU (env.txt)"; broken="no working gpt2c (stage 2)"; return
    fi
  fi
  if ! run_t "$GPT2C" prepare --input "$ROOT/data/tinyshakespeare/input.txt" --split-blank-lines \
         --out-dir "$WORK/data" --quiet >>"$RUNS" 2>&1; then
    STATUS=FAIL DETAIL="$how binaries; gpt2c prepare failed (runs.txt)"; broken="no data (stage 2)"; return
  fi
  STATUS=PASS DETAIL="$how binaries; $(grep -m1 '^cuda:' "$ENV")"
}

# ---- 3: op tests ----
st_ops() {
  run_t "$TEST_OPS" cuda >"$OPS" 2>&1
  local rc=$? last
  last=$(grep -E '^[0-9]+ cases:' "$OPS" | tail -1)
  if [ $rc -eq 0 ]; then STATUS=PASS DETAIL="$last"
  elif timed_out $rc; then STATUS=FAIL DETAIL="timed out; ${last:-no summary} (ops.txt)"
  else STATUS=FAIL DETAIL="exit $rc, $(grep -c . "$OPS") lines in ops.txt; ${last:-no summary}"
  fi
}

# ---- 4: the comparison with the CPU's fp32 log ----
st_compare() {
  [ -s "$REF_LOG" ] || { STATUS=FAIL DETAIL="no reference log $REF_LOG (scripts/gpu-reference.sh $REF)"; return; }
  : >"$CMP"
  local bf16 fp32 rc cpu_bf16=$ROOT/tests/gpu_reference/${REF}_cpu_bf16.jsonl
  # for scale, first in the table: how far the CPU's own bf16 path is from its fp32
  [ -s "$cpu_bf16" ] && "$PY" "$ROOT/scripts/gpu_compare_log.py" --reference "$REF_LOG" --run "$cpu_bf16" \
      --steps "$CMP_STEPS" "${BF16[@]}" --table "$CMP" \
      --title "for scale: $REF bf16 on the CPU (committed)" >/dev/null
  # --stop-after, not --max-steps: the learning-rate schedule must stay the reference's
  train "$WORK/cmp-bf16" --precision bf16 --stop-after "$CMP_STEPS"
  rc=$?
  cp "$WORK/cmp-bf16/log.jsonl" "$OUTDIR/gpu_${REF}_bf16.jsonl" 2>/dev/null
  bf16=$("$PY" "$ROOT/scripts/gpu_compare_log.py" --reference "$REF_LOG" --run "$WORK/cmp-bf16/log.jsonl" \
         --steps "$CMP_STEPS" "${BF16[@]}" --table "$CMP" \
         --title "$REF bf16 on the GPU (gpt2c exit $rc)" 2>&1) || rc=1
  # fp32 with TF32 off: the products in fp32 as on the CPU, so only the order of the sums differs
  GPT2C_CUDA_TF32=0 train "$WORK/cmp-fp32" --precision fp32 --stop-after "$FP32_STEPS"
  local rc2=$?
  fp32=$("$PY" "$ROOT/scripts/gpu_compare_log.py" --reference "$REF_LOG" --run "$WORK/cmp-fp32/log.jsonl" \
         --steps "$FP32_STEPS" "${FP32[@]}" --table "$CMP" \
         --title "$REF fp32, TF32 off, on the GPU (gpt2c exit $rc2)" 2>&1) || rc2=1
  DETAIL="$REF bf16 $bf16; fp32 (TF32 off) $fp32"
  rm -rf "$WORK/cmp-bf16" "$WORK/cmp-fp32"
  if [ $rc -eq 0 ] && [ $rc2 -eq 0 ]; then STATUS=PASS; else STATUS=FAIL; fi
}

# ---- 5: determinism and resume ----
same_model() { cmp -s "$1/model/model.safetensors" "$2/model/model.safetensors"; }
losses() { "$PY" -c 'import json, sys
print([(r["step"], r["loss"], r["norm"]) for r in map(json.loads, open(sys.argv[1])) if "loss" in r])' "$1/log.jsonl"; }
st_determinism() {
  local a=$WORK/det-a b=$WORK/det-b c=$WORK/det-c half=$((DET_STEPS / 2)) out=()
  local flags=(--precision bf16 --max-steps "$DET_STEPS")
  train "$a" "${flags[@]}" && train "$b" "${flags[@]}" &&
    train "$c" "${flags[@]}" --stop-after "$half" && train "$c" "${flags[@]}" --resume ||
    { STATUS=FAIL DETAIL="a run failed or timed out (runs.txt)"; return; }
  STATUS=PASS
  if same_model "$a" "$b"; then out+=("two runs: byte-equal models")
  else out+=("two runs: models DIFFER"); STATUS=FAIL; fi
  if same_model "$a" "$c" && [ "$(losses "$a")" = "$(losses "$c")" ]; then
    out+=("stopped after $half of $DET_STEPS steps and resumed: byte-equal model, equal log")
  else out+=("stopped after $half and resumed: model or log DIFFERS"); STATUS=FAIL; fi
  DETAIL="$REF bf16 $DET_STEPS steps; $(printf '%s; ' "${out[@]}" | sed 's/; $//')"
  rm -rf "$a" "$b" "$c"
}

# ---- 6: compute-sanitizer ----
find_sanitizer() {
  command -v compute-sanitizer 2>/dev/null ||
    ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer \
       /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1
}
sanitize() { # sanitize TOOL LABEL GPT2C_ARGS...: one tool on one command; its error count
  local tool=$1 label=$2; shift 2
  echo "== compute-sanitizer --tool $tool: gpt2c $*" >>"$SAN"
  run_t "$CS" --tool "$tool" --error-exitcode 86 --print-limit 20 "$GPT2C" "$@" >>"$SAN" 2>&1
  local rc=$? n
  n=$(grep -Eo '(ERROR|RACECHECK|SYNCCHECK) SUMMARY: [0-9]+' "$SAN" | tail -1 | grep -Eo '[0-9]+$')
  if timed_out $rc; then SAN_OUT+=("$label: timed out"); SAN_BAD=1
  elif [ $rc -ne 0 ]; then SAN_OUT+=("$label: ${n:-?} error(s), exit $rc"); SAN_BAD=1
  else SAN_OUT+=("$label: ${n:-0} errors")
  fi
}
st_sanitizer() {
  if [ "$DRY" = 1 ]; then
    DETAIL="reason: dry run on the emulated device, no compute-sanitizer (the emulated runtime checks barriers, shuffles and copies in make test)"
    return
  fi
  CS=$(find_sanitizer)
  [ -n "$CS" ] || { STATUS=FAIL DETAIL="no compute-sanitizer on this machine"; return; }
  : >"$SAN"
  SAN_OUT=() SAN_BAD=0
  # a tiny model: the sanitizers run every kernel (cuBLASLt's too) tens of times slower
  local tiny=(--model d2 --batch-size 2 --seq-len 64 --seed 1 --val-every 0 --ckpt-every 0
              --data "$DATA" --device cuda --precision bf16)
  sanitize memcheck "memcheck train" train "${tiny[@]}" --max-steps 2 --out-dir "$WORK/san"
  [ -f "$WORK/san/model/model.safetensors" ] &&
    sanitize memcheck "memcheck sample" sample --model "$WORK/san/model" --device cuda \
             --num-samples 2 --max-tokens 8 --prompt "Hello"
  # the other two on one step each, while the budget lasts
  [ $((STAGE_END - SECONDS)) -gt 40 ] &&
    sanitize racecheck racecheck train "${tiny[@]}" --max-steps 1 --out-dir "$WORK/san-race"
  [ $((STAGE_END - SECONDS)) -gt 30 ] &&
    sanitize synccheck synccheck train "${tiny[@]}" --max-steps 1 --out-dir "$WORK/san-sync"
  [ ${#SAN_OUT[@]} -ge 3 ] || SAN_OUT+=("racecheck/synccheck: out of the stage's time")
  if [ $SAN_BAD = 0 ]; then STATUS=PASS; else STATUS=FAIL; fi
  DETAIL=$(printf '%s; ' "${SAN_OUT[@]}" | sed 's/; $//')
}

# ---- 7: the benchmark ----
peak_tflops() { # dense bf16 of the GPU, from NVIDIA's H100 and H200 datasheets (1979 with sparsity)
  case "$1" in
    *H100*PCIe*) echo 756 ;;
    *H100* | *H200* | *GH200*) echo 989.4 ;;
    *) echo "" ;;
  esac
}
bench_run() { # bench_run OUT B: the benchmark's run at micro-batch B
  gpt2c_run train --model "$BENCH_MODEL" --data "$DATA" --out-dir "$1" --device cuda --precision bf16 \
            --batch-size "$2" --seq-len "$BENCH_T" --total-batch-size "$BENCH_TOTAL" \
            --max-steps "$BENCH_STEPS" --warmup-steps 2 --val-every 0 --ckpt-every 0 --seed 1337
}
st_bench() {
  : >>"$BENCH"
  # the plan names the largest micro-batch that fits when asked for more than fits
  local fit b mem_pid=""
  if gpt2c_run train --model "$BENCH_MODEL" --data "$DATA" --out-dir "$WORK/probe" --device cuda \
         --precision bf16 --batch-size "$PROBE_B" --seq-len "$BENCH_T" --max-steps 1 --val-every 0; then
    fit=$PROBE_B
  else
    fit=$(grep -Eo 'largest --batch-size that fits at --seq-len [0-9]+ is [0-9]+' "$RUNS" | tail -1 | awk '{print $NF}')
    [ -n "$fit" ] || { STATUS=FAIL DETAIL="the probe at batch $PROBE_B failed without naming what fits (runs.txt)"; return; }
  fi
  # a power of two, so that it divides the 2^19 tokens of a step
  b=1; while [ $((b * 2)) -le "$fit" ] && [ $((BENCH_TOTAL % (b * 2 * BENCH_T))) -eq 0 ]; do b=$((b * 2)); done
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$WORK/mem.txt" 2>/dev/null &
    mem_pid=$!
    sleep 1
  fi
  local rc=1 note=""
  while [ $b -ge 1 ]; do # the plan leaves out the libraries' workspaces: halve on a failure
    rm -rf "$WORK/bench"
    bench_run "$WORK/bench" "$b"
    rc=$?
    [ $rc -eq 0 ] && break
    # out of time: the steps logged so far still measure the speed
    timed_out $rc && note=" (timed out after $(grep -c tok_s "$WORK/bench/log.jsonl" 2>/dev/null || echo 0) steps)" && break
    b=$((b / 2))
  done
  [ -n "$mem_pid" ] && kill "$mem_pid" 2>/dev/null && wait "$mem_pid" 2>/dev/null
  if ! grep -q tok_s "$WORK/bench/log.jsonl" 2>/dev/null; then
    STATUS=FAIL DETAIL="no step finished, from micro-batch $fit down$note (runs.txt)"; return
  fi
  BENCH_B=$b
  local peak plan mem
  peak=$(peak_tflops "${GPU_NAME:-}")
  plan=$(grep -E '^(model|plan):' "$RUNS" | tail -2 | tr '\n' ' ')
  mem=$([ -s "$WORK/mem.txt" ] && awk 'NR == 1 {base = $1} {if ($1 > max) max = $1}
           END {printf "%d MiB used at most (%d before the run)", max, base}' "$WORK/mem.txt" ||
        echo "n/a (no nvidia-smi)")
  local line
  line=$("$PY" - "$WORK/bench/log.jsonl" "$BENCH_T" "${peak:-0}" "$plan" <<'EOF'
import json, re, statistics, sys
log, T, peak, plan = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
steps = [r for r in map(json.loads, open(log)) if "tok_s" in r]
timed = steps[2:] or steps  # the first steps warm up (cuBLASLt's heuristics, first touch)
tok_s = statistics.median(r["tok_s"] for r in timed)
m = re.search(r"(\d+) layers, \d+ heads, (\d+) wide, (\d+) positions; (\d+) parameters", plan)
L, C, P, N = map(int, m.groups())
# as bench/torch_gpt2_gpu.py and train_bench.py count: 6 per parameter (less the position
# table, which is looked up, not multiplied) plus causal attention's 6*L*C*(T+1)
flops = 6 * (N - P * C) + 6 * L * C * (T + 1)
mfu = f"{100 * tok_s * flops / (peak * 1e12):.1f}% of {peak:g} TFLOP/s" if peak else "n/a (no peak figure for this device)"
print(f"{tok_s:.0f} tok/s (median of steps {timed[0]['step']}-{timed[-1]['step']}), MFU {mfu}")
EOF
) || { STATUS=FAIL DETAIL="cannot read the run's log"; return; }
  {
    echo "== gpt2c: $BENCH_MODEL, T=$BENCH_T, micro-batch $b (probe: $fit fits), $BENCH_TOTAL tokens a step, $BENCH_STEPS steps, bf16"
    echo "$plan"; echo "$line"; echo "memory: $mem"
    echo "peak: dense bf16 ${peak:-unknown} TFLOP/s for '${GPU_NAME:-?}' (NVIDIA H100/H200 datasheets: 1979 with sparsity)"
    cat "$WORK/bench/log.jsonl"
  } >>"$BENCH"
  if [ $rc -eq 0 ]; then STATUS=PASS; else STATUS=FAIL; fi
  DETAIL="$BENCH_MODEL B=$b T=$BENCH_T total=$BENCH_TOTAL: $line$note; memory $mem"
  rm -rf "$WORK/bench" "$WORK/probe" # (d12's checkpoints: 1.5 GB each)
}

# ---- 8: PyTorch and llm.c at the same sizes ----
st_torch() {
  local args
  if [ "$DRY" = 1 ]; then
    args=(--device cpu --no-compile --model d2 --micro-batch 2 --seq-len 64 --total-batch 256 --steps 3 --warmup 1)
  else
    "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
      { DETAIL="reason: $PY has no PyTorch with CUDA here"; return; }
    # at most 64 sequences a micro-batch (the seed's): its fp32 logits take far more memory than gpt2c's
    local mb=${BENCH_B:-16}; [ "$mb" -le 64 ] || mb=64
    args=(--model d12 --micro-batch "$mb" --seq-len 1024 --total-batch 524288 --steps 10 --warmup 3
          --peak-tflops "$(peak_tflops "${GPU_NAME:-}" | grep . || echo 989.4)")
  fi
  "$PY" -c 'import torch, numpy' 2>/dev/null || { DETAIL="reason: $PY cannot import torch and numpy"; return; }
  echo "== python3 bench/torch_gpt2_gpu.py ${args[*]}" >>"$BENCH"
  local out rc
  out=$(run_t "$PY" "$ROOT/bench/torch_gpt2_gpu.py" "${args[@]}" --data "$WORK/data/train_000000.bin" 2>>"$BENCH")
  rc=$?
  echo "$out" >>"$BENCH"
  if [ $rc -ne 0 ]; then STATUS=FAIL DETAIL="exit $rc$(timed_out $rc && echo ' (timed out)') (bench.txt)"; return; fi
  STATUS=PASS
  DETAIL=$(echo "$out" | tail -1 | "$PY" -c 'import json, sys; r = json.load(sys.stdin)
mem = "" if r["peak_mem_gb"] is None else ", peak %.1f GB" % r["peak_mem_gb"]
mfu = ", MFU %.1f%%" % (100 * r["mfu"]) if r["device"] == "cuda" else " (on the CPU)"
print("%s B=%d T=%d: %.0f tok/s%s%s, torch %s%s" % (r["model"], r["micro_batch"], r["seq_len"], r["tok_s"],
      mfu, mem, r["torch"], "" if r["compile"] else ", not compiled"))') ||
    { STATUS=FAIL DETAIL="cannot read its result (bench.txt)"; }
}
st_llmc() {
  # llm.c is not in this repository, and no committed script may fetch or build it here; a
  # train_gpt2cu built by hand for sm_90 and left in .gpu/llmc/ (git-ignored) is run
  local bin=$ROOT/.gpu/llmc/train_gpt2cu
  [ -x "$bin" ] || { DETAIL="reason: no llm.c carried (.gpu/llmc/train_gpt2cu: built by hand, as no committed script may build it)"; return; }
  local mb=${BENCH_B:-16}; [ "$mb" -le 64 ] || mb=64
  echo "== llm.c train_gpt2cu -e d12 -b $mb -t 1024 -d 524288 -x 12" >>"$BENCH"
  run_t "$bin" -i "$DATA" -j "$WORK/data/val_*.bin" -o "$WORK/llmc" -e d12 -b "$mb" -t 1024 -d 524288 \
        -x 12 -v 0 -s 0 -n 0 -h 0 >"$WORK/llmc.txt" 2>&1
  local rc=$?
  tail -20 "$WORK/llmc.txt" >>"$BENCH"
  local tok
  tok=$(grep -Eo '[0-9]+ tok/s' "$WORK/llmc.txt" | tail -n +3 | awk '{print $1}' | sort -n |
        awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
  if [ $rc -eq 0 ] && [ -n "$tok" ]; then STATUS=PASS DETAIL="d12 B=$mb T=1024: $tok tok/s (median)"
  else STATUS=FAIL DETAIL="exit $rc, no tok/s read (bench.txt)"
  fi
}

# budgets in seconds: ceilings (most stages need far less), within the whole check's; the
# binaries' is for a build there, which the carried binaries make unnecessary
stage 1 env 20 st_env
stage 2 binaries 150 st_binaries
stage 3 ops 90 st_ops
stage 4 compare 60 st_compare
stage 5 determinism 90 st_determinism
stage 6 sanitizer 75 st_sanitizer
stage 7 bench 75 st_bench
stage 8 torch 90 st_torch
stage 8 llmc 45 st_llmc

rm -rf "$WORK"
n=$(find "$OUTDIR" -type f | wc -l)
echo "gpu-check: $(grep -c ' PASS ' "$SUMMARY") passed, $(grep -c ' FAIL ' "$SUMMARY") failed, $(grep -c ' SKIP ' "$SUMMARY") skipped; $n files in $OUTDIR"
exit $FAILED
